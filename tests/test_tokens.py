"""Token mapping, table-driven, on real CLIP BPE tokenization laid out as WebUI columns."""

from __future__ import annotations

import pytest

from ae_demo.tiny import clip_tokenizer, prompt_columns
from ae_lib.tokens import TokenColumn, TokenRule, map_subjects, text_columns


def _split_word() -> str:
    """A word CLIP splits into several tokens (found, not assumed)."""
    for word in ("kittycorn", "dragonfrog", "zebracat", "hummingbirdx"):
        if len(clip_tokenizer().encode(word)) > 1:
            return word
    raise AssertionError("no multi-token word found")


SPLIT = _split_word()

CASES = [
    # (prompt, spec, expected columns, expected error fragment or None)
    ("a cat and a frog", "cat, frog", [2, 5], None),
    ("a cat and a frog", "cat frog", [2, 5], None),
    ("a cat and a frog", "2,5", [2, 5], None),
    ("a cat and a frog", "cat, 5", [2, 5], None),
    ("a cat and a frog", "CAT, Frog", [2, 5], None),
    ("a cat and a frog", "(cat:1.3), [frog]", [2, 5], None),
    ("a cat and a frog", "cat, cat", [2], None),
    ("a frog and a frog", "frog#2", [5], None),
    ("a frog and a frog", "frog", [2], None),
    ("a frog and a frog", "frog#3", [], "has 2 'frog'"),
    ("a cat and a frog", "dog", [], "'dog' is not a word"),
    ("a cat and a frog", "0", [], "start token"),
    ("a cat and a frog", "6", [], "end token"),
    ("a cat and a frog", "7", [], "padding"),
    ("a cat and a frog", "99", [], "out of range"),
    ("a cat and a frog", "", [], "no subjects"),
    ("a cat and a frog", " , ,", [], "no subjects"),
    ("a cat and a frog", "cat, dog, 0", [2], "'dog'"),
    ("a cat, and a frog", "frog", [6], None),
]


@pytest.mark.parametrize(("prompt", "spec", "columns", "error"), CASES)
def test_map_subjects(prompt, spec, columns, error):
    result = map_subjects(prompt_columns(prompt), spec)
    assert result.columns == columns
    if error is None:
        assert result.ok and not result.errors
    else:
        assert not result.ok and error in result.message()


def test_multi_token_word_selects_its_last_token():
    cols = prompt_columns(f"a {SPLIT} and a frog")
    pieces = len(clip_tokenizer().encode(SPLIT))
    result = map_subjects(cols, f"{SPLIT}, frog")
    assert result.ok and result.columns == [1 + pieces, 3 + pieces + 1]
    assert map_subjects(cols, "2").columns == [2], "a non-final piece stays selectable by index"


def test_embedding_columns_match_by_name():
    cols = [TokenColumn(0, 49406, "<start>", "start"), TokenColumn(1, 320, "a", "token")]
    cols += [TokenColumn(2, 0, "mystyle", "embedding", False), TokenColumn(3, 0, "", "embedding", True)]
    cols += [TokenColumn(4, 49407, "<end>", "end")]
    assert map_subjects(cols, "MyStyle").columns == [3]


def test_labels_follow_columns():
    result = map_subjects(prompt_columns("a cat and a frog"), "5, cat")
    assert result.labels == ["frog", "cat"]


def test_text_columns_rules():
    cols = prompt_columns("a cat and a frog")
    assert text_columns(cols, TokenRule.REFERENCE) == list(range(1, 76))
    assert text_columns(cols, TokenRule.PROMPT_ONLY) == [1, 2, 3, 4, 5]
    two_chunks = [TokenColumn(i, 1, "x", "token" if i % 77 not in (0, 76) else "end") for i in range(154)]
    assert text_columns(two_chunks, TokenRule.REFERENCE) == list(range(1, 76)) + list(range(78, 153))
