"""Instruction tokenizers for the VLA families: the checkpoint's own (a local folder of tokenizer
files, or the Hugging Face cache, never a download) or a built-in byte-level one for random-init
smoke runs.

LeRobot's pretrained_model/ folders do not contain the tokenizer: policy_preprocessor.json only
names it (`tokenizer_name`, e.g. HuggingFaceTB/SmolVLM2-500M-Video-Instruct). rl_post looks for
tokenizer files in `model.tokenizer_path` (by default the init_from folder), then in the local
Hugging Face cache under that name, and says how to provide them when neither has them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from rl_post.config import ConfigError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
BYTE_TOKENIZER_NAME = "rl_post/byte-level"  # marker written into saved processors
PAD_TOKEN = "<pad>"
CACHE_SIZE = 64  # distinct instruction batches kept tokenized


def byte_level_tokenizer() -> Any:
    """One token per UTF-8 byte (ids 1..256) and <pad> = 0; needs no files and no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {PAD_TOKEN: 0, **{ch: i + 1 for i, ch in enumerate(alphabet)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN)


def has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(path: str | None, name_hint: str | None = None) -> Any:
    """Tokenizer from `path` (a folder of tokenizer files, or a LeRobot folder whose processor
    names one in the local HF cache); None -> the byte-level tokenizer."""
    if path is None:
        return byte_level_tokenizer()
    from transformers import AutoTokenizer

    folder = Path(path)
    if (folder / "policy").is_dir() and not has_tokenizer_files(folder):
        folder = folder / "policy"  # a training checkpoint: <run>/checkpoints/iter_N/policy
    if folder.is_dir() and has_tokenizer_files(folder):
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    name = name_hint or _tokenizer_name_in(folder)
    if name == BYTE_TOKENIZER_NAME:
        return byte_level_tokenizer()
    if name:
        try:
            return AutoTokenizer.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError):
            pass
    raise ConfigError(
        f"no tokenizer files (tokenizer.json / tokenizer_config.json) in {folder}"
        + (f" and '{name}' is not in the local Hugging Face cache" if name else "")
        + ". LeRobot checkpoints only name their tokenizer; copy its files into the folder "
        "(on a machine with internet: AutoTokenizer.from_pretrained(name).save_pretrained(dir)) "
        "or set model.tokenizer_path=<dir with tokenizer.json>"
    )


def _tokenizer_name_in(folder: Path) -> str | None:
    """tokenizer_name of the tokenizer_processor step in a LeRobot policy_preprocessor.json."""
    processor = folder / "policy_preprocessor.json"
    if not processor.is_file():
        return None
    try:
        steps = json.loads(processor.read_text()).get("steps", [])
    except json.JSONDecodeError:
        return None
    for step in steps:
        if step.get("registry_name") == "tokenizer_processor":
            return step.get("config", {}).get("tokenizer_name")
    return None


class InstructionEncoder:
    """Instruction strings -> token ids [N, L] and mask [N, L] the way LeRobot's processors do it:
    a trailing newline (the new-line processor step), right padding, truncation at max_length;
    padding to the longest instruction of the batch or always to max_length."""

    def __init__(self, tokenizer: Any, max_length: int, padding: str) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding
        self._cache: OrderedDict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def __call__(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(texts)
        cached = self._cache.get(key)
        if cached is None:
            prompts = [t if t.endswith("\n") else f"{t}\n" for t in texts]
            out = self.tokenizer(
                prompts,
                max_length=self.max_length,
                truncation=True,
                padding=self.padding,
                padding_side="right",
                return_tensors="pt",
            )
            cached = (out["input_ids"], out["attention_mask"].bool())
            self._cache[key] = cached
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return cached[0].to(device), cached[1].to(device)
