"""Token chunks as (token, weight, ...) entries -> one TokenColumn per column of the text embedding.

Hosts that tokenize into fixed-size chunks of (token, weight[, word id]) entries (ComfyUI's
`clip.tokenize(text)` gives `{"l": [[(id, weight), ...77], ...]}`, SDXL adds "g") encode chunk c, position j
to embedding column `chunk_size * c + j`. This module reads such chunks; it knows nothing of the host.

- The first entry of a chunk is its start token; the first end token after the prompt's tokens is the chunk's
  end column and every later end or pad token is padding (the reference's layout: start, tokens, end, pad...).
- An entry whose token is not an integer (a textual-inversion vector) is an embedding column; a run of them is
  one embedding (its last vector ends the "word"). A host that knows its embeddings (the WebUIs' chunk fixes)
  gives `Embedded` entries instead: each names its embedding and says where it ends.

Every host's token columns come from here (ComfyUI's ae_comfy.tokens, the WebUIs' ae_webui.tokenize).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ae_lib.tokens import TokenColumn

Decode = Callable[[int], str]  # token id -> BPE piece, "</w>" marking a word's end
ANONYMOUS = -1  # the token id of an embedding vector a host gives without a name


@dataclass(frozen=True)
class Embedded:
    """A chunk entry that is one vector of a named embedding: its first vector carries the name, its last ends
    the word."""

    token_id: int
    name: str
    last: bool


def _token_id(token: Any) -> int | None:
    """The integer id of an entry's token, or None for an embedding vector."""
    if isinstance(token, bool):
        return None
    if isinstance(token, int):
        return token
    try:
        if getattr(token, "ndim", 0) == 0:
            return int(token)
    except (TypeError, ValueError):
        return None
    return None


def _entry_column(column: int, entry: Any, ended: bool, end_id: int, decode: Decode) -> TokenColumn:
    token = entry[0] if isinstance(entry, (tuple, list)) else entry
    if isinstance(token, Embedded):
        return TokenColumn(column, token.token_id, token.name, "embedding", token.last)
    tid = _token_id(token)
    if tid is None:
        return TokenColumn(column, ANONYMOUS, "<embedding>", "embedding", True)
    if ended or tid == end_id:
        return TokenColumn(column, tid, "" if ended else "<end>", "pad" if ended else "end")
    piece = str(decode(tid))
    return TokenColumn(column, tid, piece.removesuffix("</w>"), "token", piece.endswith("</w>"))


def chunk_columns(chunks: Sequence[Sequence[Any]], decode: Decode, end_id: int) -> list[TokenColumn]:
    """One TokenColumn per entry of every chunk; chunk c, entry j is column `len(chunk) * c + j`.

    After the end token every entry is padding, whatever its id (SDXL's CLIP-G pads with id 0)."""
    columns: list[TokenColumn] = []
    for chunk in chunks:
        base = len(columns)
        ended = False
        for j, entry in enumerate(chunk):
            if j == 0:
                token = entry[0] if isinstance(entry, (tuple, list)) else entry
                columns.append(TokenColumn(base, _token_id(token) or 0, "<start>", "start"))
                continue
            col = _entry_column(base + j, entry, ended, end_id, decode)
            ended = ended or col.kind in ("end", "pad")
            columns.append(col)
    return _join_embeddings(columns)


def _anonymous(col: TokenColumn | None) -> bool:
    return col is not None and col.kind == "embedding" and col.token_id == ANONYMOUS


def _join_embeddings(columns: list[TokenColumn]) -> list[TokenColumn]:
    """Consecutive unnamed embedding columns form one embedding: only its last column ends the word, only its
    first is named."""
    out = list(columns)
    for i, col in enumerate(out):
        if not _anonymous(col):
            continue
        nxt = out[i + 1] if i + 1 < len(out) else None
        prev = out[i - 1] if i > 0 else None
        continues = _anonymous(nxt)
        named = not _anonymous(prev)
        out[i] = TokenColumn(col.column, col.token_id, col.text if named else "", "embedding", not continues)
    return out
