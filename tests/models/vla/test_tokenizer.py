"""Instruction tokenization the way LeRobot's processors do it, without downloads."""

import torch

from rl_post.models.vla.tokenizer import InstructionEncoder, byte_level_tokenizer, load_tokenizer


def test_byte_tokenizer_newline_padding_and_truncation():
    enc = InstructionEncoder(byte_level_tokenizer(), max_length=6, padding="longest")
    ids, mask = enc(["ab", "abcdefgh"], torch.device("cpu"))
    assert ids.shape == mask.shape == (2, 6)
    assert mask[0].tolist() == [True, True, True, False, False, False]  # "ab\n", right-padded
    assert mask[1].all()  # truncated to max_length
    assert ids[0, 3:].tolist() == [0, 0, 0]
    fixed = InstructionEncoder(byte_level_tokenizer(), max_length=6, padding="max_length")
    assert fixed(["a"], torch.device("cpu"))[0].shape == (1, 6)


def test_saved_tokenizer_folder_loads_back(tmp_path):
    byte_level_tokenizer().save_pretrained(str(tmp_path))
    loaded = load_tokenizer(str(tmp_path))
    assert loaded("hé\n")["input_ids"] == byte_level_tokenizer()("hé\n")["input_ids"]
