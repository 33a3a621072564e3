"""One token-column reader (ae_lib.chunks) for every host: the WebUIs' PromptChunks (with their named
textual-inversion fixes) and ComfyUI's (id, weight) chunks give the same columns for the same tokens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ae_lib.chunks import chunk_columns
from ae_webui import tokenize
from tests import webui_host as host

START, END, PAD = 49406, 49407, 0
PIECES = {320: "a</w>", 2368: "cat</w>", 1000: "fro", 1001: "g</w>"}


@pytest.fixture(autouse=True)
def _host():
    host.start()


def _chunk(tokens, fixes=()):
    return SimpleNamespace(tokens=[START, *tokens, END] + [PAD] * (75 - len(tokens)), multipliers=[1.0] * 77,
                           fixes=list(fixes))


def _fix(offset, name, vectors):
    return SimpleNamespace(offset=offset, embedding=SimpleNamespace(name=name, vectors=vectors))


def _model(chunks):
    tokenizer = SimpleNamespace(convert_ids_to_tokens=lambda i: PIECES.get(i, "?"))
    wrapper = SimpleNamespace(tokenize_line=lambda text: (chunks, 0), id_end=END, tokenizer=tokenizer)
    return SimpleNamespace(cond_stage_model=wrapper)


def test_webui_chunks_read_as_comfyui_chunks_including_padding_that_is_not_the_end_token():
    chunks = [_chunk([320, 2368, 320, 1000, 1001])]
    webui = tokenize.columns_for_text("a cat a frog", _model(chunks))
    comfy = chunk_columns([[(t, 1.0) for t in chunks[0].tokens]], lambda i: PIECES.get(i, "?"), END)
    assert webui == comfy
    assert [c.kind for c in webui[:8]] == ["start", "token", "token", "token", "token", "token", "end", "pad"]
    assert all(c.kind == "pad" and c.text == "" for c in webui[7:]), "id 0 after the end is padding, not a token"
    assert [c.text for c in webui[4:6]] == ["fro", "g"] and not webui[4].word_end and webui[5].word_end


def test_two_adjacent_named_embeddings_stay_two_words():
    chunks = [_chunk([320, 0, 0, 0, 2368], [_fix(1, "style", 2), _fix(3, "pose", 1)])]
    cols = tokenize.columns_for_text("a style pose cat", _model(chunks))
    emb = [(c.text, c.kind, c.word_end) for c in cols[2:5]]
    assert emb == [("style", "embedding", False), ("", "embedding", True), ("pose", "embedding", True)]
    assert cols[5].text == "cat"
