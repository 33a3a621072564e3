"""Token columns from the loaded model's own tokenize_line (SD1 and SD2 wrappers of the stand-in)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from modules import sd_models, shared

from ae_lib.tokens import TokenRule, map_subjects, text_columns
from ae_webui import tokenize
from tests import webui_host as host


@pytest.fixture(autouse=True)
def _host():
    host.start()


def test_columns_follow_tokenize_line_for_long_prompts_break_and_emphasis():
    prompt = "a (cat:1.3) and a frog BREAK a dog"
    cols = tokenize.columns_for_text(prompt)
    assert [c.column for c in cols] == list(range(154))
    assert [c.kind for c in cols[:7]] == ["start", "token", "token", "token", "token", "token", "end"]
    assert cols[76].kind == "pad" and cols[77].kind == "start"
    found = map_subjects(cols, "cat, frog, dog")
    assert found.ok and found.columns == [2, 5, 79]
    long_prompt = ", ".join(["a red cat"] * 30) + ", a frog"
    long_cols = tokenize.columns_for_text(long_prompt)
    frog = map_subjects(long_cols, "frog").columns[0]
    assert frog > 77 and long_cols[frog].text == "frog"  # comma backtracking moved it into chunk 2


def test_sd2_wrapper_and_rule():
    sd1 = shared.sd_model
    try:
        sd_models.load_model(sd_models.make_sd2_model(0))
        assert tokenize.token_rule(shared.sd_model) is TokenRule.PROMPT_ONLY
        cols = tokenize.columns_for_text("a cat and a frog")
        assert text_columns(cols, TokenRule.PROMPT_ONLY) == [1, 2, 3, 4, 5]
        processed, _ = host.run_txt2img(host.ae(), steps=4)
        assert "AE scores" in processed.infotexts[0] and "AE error" not in processed.infotexts[0]
    finally:
        sd_models.load_model(sd1)
    assert tokenize.token_rule(shared.sd_model) is TokenRule.REFERENCE


def test_sdxl_uses_the_clip_l_embedder_and_prompt_tokens_only():
    clip_l = SimpleNamespace(tokenize_line=lambda text: None)
    sdxl = SimpleNamespace(is_sdxl=True, is_sd1=False, conditioner=SimpleNamespace(
        embedders=[SimpleNamespace(), clip_l, SimpleNamespace(tokenize_line=None)]))
    assert tokenize.text_wrapper(sdxl) is clip_l
    assert tokenize.token_rule(sdxl) is TokenRule.PROMPT_ONLY


def test_and_and_prompt_editing_use_the_first_subprompt_at_each_step():
    assert tokenize.first_subprompt("a cat AND a frog :1.2") == "a cat"
    texts = tokenize.schedule_texts("a [cat:dog:3] and a frog", 10)
    assert [t for _, t in texts] == ["a cat and a frog", "a dog and a frog"]
