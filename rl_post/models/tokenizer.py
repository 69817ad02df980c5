"""Instruction tokenizers that need no download: hashed words or raw UTF-8 bytes.

Id 0 is padding. Hashing uses crc32 (stable across processes, unlike Python's salted `hash`), so
rollout workers and the learner agree on ids. Instructions repeat every chunk-step, so both the
per-string ids and the last batch tensor are cached.
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict

import torch

PAD_ID = 0
BYTE_VOCAB = 256
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class InstructionTokenizer:
    def __init__(self, kind: str, vocab_size: int, max_tokens: int, cache_size: int) -> None:
        if kind not in ("hashed_words", "bytes"):
            raise ValueError(f"unknown tokenizer '{kind}'; choose hashed_words or bytes")
        self.kind = kind
        self.max_tokens = max_tokens
        # +1: id 0 is reserved for padding
        self.vocab_size = (BYTE_VOCAB if kind == "bytes" else vocab_size) + 1
        self._cache_size = cache_size
        self._ids: OrderedDict[str, list[int]] = OrderedDict()
        self._last_batch: tuple[tuple[str, ...], torch.device, torch.Tensor] | None = None

    def _encode(self, text: str) -> list[int]:
        if self.kind == "bytes":
            ids = [b + 1 for b in text.encode("utf-8")]
        else:
            buckets = self.vocab_size - 1
            ids = [zlib.crc32(w.encode("utf-8")) % buckets + 1 for w in _WORD.findall(text.lower())]
        return ids[: self.max_tokens]

    def encode_one(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self._encode(text)
            self._ids[text] = ids
            if len(self._ids) > self._cache_size:
                self._ids.popitem(last=False)
        else:
            self._ids.move_to_end(text)
        return ids

    def __call__(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """Token ids [N, max_tokens] int64, right-padded with PAD_ID."""
        key = tuple(texts)
        if self._last_batch is not None and self._last_batch[:2] == (key, device):
            return self._last_batch[2]
        # Tokenize each distinct string once, then gather rows (a batch holds few distinct tasks).
        distinct = list(dict.fromkeys(texts))
        table = torch.full((len(distinct), self.max_tokens), PAD_ID, dtype=torch.long)
        for row, text in enumerate(distinct):
            ids = self.encode_one(text)
            if ids:
                table[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        position = {text: row for row, text in enumerate(distinct)}
        rows = torch.tensor([position[text] for text in texts], dtype=torch.long)
        batch = table[rows].to(device)
        self._last_batch = (key, device, batch)
        return batch
