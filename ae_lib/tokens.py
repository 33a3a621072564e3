"""Subject spec -> text-embedding columns, and which columns enter the re-softmax.

A host describes one image's tokenized prompt as one `TokenColumn` per column of the text embedding
(77 per chunk: start, up to 75 tokens/padding, closing column). The user's spec names subjects by word or
by column index; this module never raises on bad specs, it returns the problems.

Rules (documented in README "Subjects"):
- Items are separated by commas or whitespace: "cat, frog" == "cat frog".
- A word matches a prompt word case-insensitively; emphasis syntax "(cat:1.2)", "[cat]" is ignored.
- A word the tokenizer splits into several tokens selects its LAST token: CLIP's text encoder is causal,
  so the last piece is the one that has seen the whole word.
- A repeated word selects its first occurrence; "frog#2" selects the second one.
- A number is a column index as the reference counts it (start token = 0: "a cat and a frog" -> cat 2,
  frog 5); in long prompts chunk c's tokens are 77*c + 1 + j, as the token table shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

KINDS_SELECTABLE = ("token", "embedding")


@dataclass(frozen=True)
class TokenColumn:
    """One column of the text embedding."""

    column: int
    token_id: int
    text: str  # display text without the BPE word-end marker; "" for continuation columns of an embedding
    kind: str = "token"  # "start" | "token" | "embedding" | "end" | "pad"
    word_end: bool = True  # False when the next column continues the same word (split words, embeddings)

    @property
    def selectable(self) -> bool:
        return self.kind in KINDS_SELECTABLE


class TokenRule(Enum):
    """Which columns enter the x100 softmax over text tokens."""

    # SD1, as the reference: every column but each chunk's start and closing column (end/padding stay in).
    REFERENCE = "reference"
    # SD2 (the reference's normalize_eot) and SDXL (our choice): prompt tokens only, no end token or padding.
    PROMPT_ONLY = "prompt_only"


def text_columns(tokens: Sequence[TokenColumn], rule: TokenRule) -> list[int]:
    if rule is TokenRule.REFERENCE:
        return [t.column for t in tokens if t.column % 77 not in (0, 76)]
    return [t.column for t in tokens if t.selectable]


@dataclass
class SubjectResult:
    """Columns for the subjects, with a label each; `errors` names every problem (empty = usable)."""

    columns: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.columns)

    def message(self) -> str:
        return "; ".join(self.errors)


_EMPHASIS = re.compile(r"[()\[\]{}]")
_WEIGHT = re.compile(r":\s*-?\d*\.?\d+\s*$")
_ITEM = re.compile(r"^(?P<word>.+?)(?:#(?P<nth>\d+))?$")


def split_spec(spec: str) -> list[str]:
    """Items of a spec: separated by commas or whitespace, emphasis stripped, empty items dropped."""
    items = []
    for raw in re.split(r"[,\s]+", spec or ""):
        item = _WEIGHT.sub("", _EMPHASIS.sub("", raw)).strip()
        if item:
            items.append(item)
    return items


def prompt_words(tokens: Sequence[TokenColumn]) -> list[tuple[str, list[int]]]:
    """Words of the prompt as (lower-case text, columns), a word ending at a column with word_end."""
    words: list[tuple[str, list[int]]] = []
    text, cols = "", []
    for t in tokens:
        if not t.selectable:
            text, cols = "", []
            continue
        text += t.text
        cols.append(t.column)
        if t.word_end:
            words.append((text.lower(), cols))
            text, cols = "", []
    return words


def _describe_column(tokens: Sequence[TokenColumn], index: int) -> str | None:
    """Why a column cannot be a subject, or None when it can."""
    if index < 0 or index >= len(tokens):
        return f"index {index} is out of range (this prompt has columns 0-{len(tokens) - 1})"
    kind = tokens[index].kind
    if kind == "start":
        return f"index {index} is the start token"
    if kind == "end":
        return f"index {index} is the end token"
    if kind == "pad":
        return f"index {index} is padding after the prompt"
    return None


def _resolve_word(item: str, words: list[tuple[str, list[int]]]) -> tuple[int | None, str]:
    m = _ITEM.match(item)
    word = (m.group("word") if m else item).lower()
    nth = int(m.group("nth")) if m and m.group("nth") else 1
    hits = [cols for text, cols in words if text == word]
    if not hits:
        return None, f"'{word}' is not a word of the prompt"
    if nth < 1 or nth > len(hits):
        return None, f"'{item}': the prompt has {len(hits)} '{word}'"
    return hits[nth - 1][-1], ""


def map_subjects(tokens: Sequence[TokenColumn], spec: str) -> SubjectResult:
    """Columns for a user's subject spec on one tokenized prompt (see module doc for the rules)."""
    result = SubjectResult()
    items = split_spec(spec)
    if not items:
        result.errors.append("no subjects given")
        return result
    words = prompt_words(tokens)
    for item in items:
        if item.isdigit():
            column, problem = int(item), _describe_column(tokens, int(item))
            label = tokens[column].text if problem is None else item
        else:
            found, problem = _resolve_word(item, words)
            column, label = (found if found is not None else -1), item.split("#")[0].lower()
            problem = problem or None
        if problem:
            result.errors.append(problem)
        elif column not in result.columns:
            result.columns.append(column)
            result.labels.append(label)
    return result
