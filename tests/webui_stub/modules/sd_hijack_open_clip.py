"""Stand-in for modules/sd_hijack_open_clip.py (v1.10.1): the SD2 (OpenCLIP) wrapper; pad id 0."""

from __future__ import annotations

import open_clip.tokenizer  # the shim in ../open_clip: the real open_clip tokenizer.py
import torch
from modules import sd_hijack_clip
from modules.shared import opts

tokenizer = open_clip.tokenizer._tokenizer  # modules/sd_hijack_open_clip.py:tokenizer


class FrozenOpenCLIPEmbedderWithCustomWords(sd_hijack_clip.FrozenCLIPEmbedderWithCustomWordsBase):
    """modules/sd_hijack_open_clip.py:FrozenOpenCLIPEmbedderWithCustomWords -- ids from open_clip's encoder;
    id_pad = 0, so process_tokens writes 0 after the first end token."""

    def __init__(self, wrapped, hijack) -> None:
        super().__init__(wrapped, hijack)
        self.comma_token = next(v for k, v in tokenizer.encoder.items() if k == ",</w>")
        self.id_start = tokenizer.encoder["<start_of_text>"]
        self.id_end = tokenizer.encoder["<end_of_text>"]
        self.id_pad = 0

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        assert not opts.use_old_emphasis_implementation, "Old emphasis implementation not supported for Open Clip"
        return [tokenizer.encode(text) for text in texts]

    def encode_with_transformers(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.wrapped.encode_with_transformer(tokens)
