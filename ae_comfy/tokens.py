"""The node's prompt as ComfyUI tokenizes it -> the text-embedding columns of the CONDITIONING it encodes.

`clip.tokenize(text)` gives {"l": [[(id, weight), ... 77], ...]} (SD2: "h"; SDXL: "g" and "l" side by side,
the same words at the same positions); chunk c, position j is column 77c + j of the encoded tensor. The node
encodes exactly these tokens, so the columns A&E scores are those of the conditioning the sampler gets.
"""

from __future__ import annotations

from typing import Any

from ae_lib.chunks import chunk_columns
from ae_lib.scores import TokenRule
from ae_lib.tokens import TokenColumn

KEY_ORDER = ("l", "h", "g")  # the tokenizer whose words name the columns (CLIP-L where there is one)


def tokenizer_key(tokens: dict[str, Any]) -> str:
    for key in KEY_ORDER:
        if key in tokens:
            return key
    msg = f"this CLIP's tokens ({', '.join(tokens)}) have none of the CLIP text encoders A&E knows (l, h, g)"
    raise ValueError(msg)


def token_rule(tokens: dict[str, Any]) -> TokenRule:
    """SD1 (CLIP-L only): the reference's columns. SD2 (CLIP-H) and SDXL (G + L): prompt tokens only."""
    return TokenRule.REFERENCE if set(tokens) == {"l"} else TokenRule.PROMPT_ONLY


def prompt_columns(clip: Any, tokens: dict[str, Any]) -> list[TokenColumn]:
    key = tokenizer_key(tokens)
    tokenizer = getattr(clip.tokenizer, f"clip_{key}")
    inv = tokenizer.inv_vocab
    return chunk_columns(tokens[key], lambda i: inv.get(int(i), "?"), int(tokenizer.end_token))
