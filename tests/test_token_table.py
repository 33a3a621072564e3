"""The token table's payload (no browser): columns, refs that round-trip through map_subjects, errors; and the
gradio parts built by build_token_table inside a Blocks (ids carry the tab, events are wired)."""

from __future__ import annotations

import json
import logging
import sys
import time
import types
from pathlib import Path

import pytest

from ae_lib.tokens import TokenColumn, map_subjects
from ae_webui import token_table
from ae_webui.token_table import payload_for, subject_refs, table_payload

STUB = Path(__file__).parent / "webui_stub"
CHUNK = 77


def _columns(*chunks: list[tuple[str, str, bool]]) -> list[TokenColumn]:
    """TokenColumns as tokenize_line lays them out: per chunk start, (text, kind, word_end)..., end, padding."""
    cols: list[TokenColumn] = []
    for c, pieces in enumerate(chunks):
        base = CHUNK * c
        cols.append(TokenColumn(base, 49406, "<start>", "start"))
        for j, (text, kind, word_end) in enumerate(pieces, start=1):
            cols.append(TokenColumn(base + j, 1000 + j, text, kind, word_end))
        cols.append(TokenColumn(base + len(pieces) + 1, 49407, "<end>", "end"))
        cols += [TokenColumn(base + j, 49407, "", "pad") for j in range(len(pieces) + 2, CHUNK)]
    return cols


def _words(text: str) -> list[tuple[str, str, bool]]:
    return [(w, "token", True) for w in text.split()]


CAT_FROG = _columns(_words("a cat and a frog"))


def _payload(tokens: list[TokenColumn], prompt: str = "p") -> dict:
    return json.loads(table_payload(prompt, columns_fn=lambda _: tokens))


def _refs(payload: dict) -> dict[int, str]:
    return {item["c"]: item["r"] for item in payload["items"] if "r" in item}


def test_cat_and_frog_columns_and_refs():
    payload = _payload(CAT_FROG, "a cat and a frog")
    assert payload["prompt"] == "a cat and a frog"
    assert payload["error"] == ""
    assert (payload["columns"], payload["chunks"]) == (77, 1)
    assert _refs(payload) == {1: "a", 2: "cat", 3: "and", 4: "a#2", 5: "frog"}


def test_start_end_and_padding_are_shown_but_not_selectable():
    items = _payload(CAT_FROG)["items"]
    assert items[0] == {"c": 0, "k": "start", "t": "<start>", "w": True}
    assert items[6] == {"c": 6, "k": "end", "t": "<end>", "w": True}
    assert items[7] == {"c": 7, "k": "pad", "t": "", "w": True, "n": 70}  # a run of padding is one item
    assert len(items) == 8
    assert all("r" not in item for item in items if item["k"] in ("start", "end", "pad"))


def test_split_word_selects_its_last_piece_by_word_and_others_by_index():
    tokens = _columns([("a", "token", True), ("water", "token", False), ("melon", "token", True)])
    assert subject_refs(tokens) == {1: "a", 2: "2", 3: "watermelon"}


def test_repeats_numbers_and_punctuation():
    tokens = _columns(_words("3 frog , frog # 2 frog#2"))
    refs = subject_refs(tokens)
    assert refs[1] == "1"  # "3" would be read as column 3
    assert refs[2] == "frog"
    assert refs[3] == "3"  # "," would vanish in split_spec
    assert refs[4] == "frog#2"
    assert refs[5] == "5"  # "#"
    assert refs[7] == "7"  # a prompt word "frog#2" cannot be named as itself


def test_embedding_selected_by_name_at_its_last_column():
    tokens = _columns([("a", "token", True), ("myemb", "embedding", False), ("", "embedding", False),
                       ("", "embedding", True), ("cat", "token", True)])  # fmt: skip
    assert subject_refs(tokens) == {1: "a", 2: "2", 3: "3", 4: "myemb", 5: "cat"}
    assert [i["k"] for i in _payload(tokens)["items"][2:5]] == ["embedding"] * 3


def test_word_cut_by_a_chunk_boundary_keeps_an_index():
    tokens = _columns([("cat", "token", True), ("water", "token", False)], _words("frog"))
    refs = subject_refs(tokens)
    assert refs == {1: "cat", 2: "2", 78: "frog"}


def test_two_chunks_columns_and_chunk_count():
    tokens = _columns(_words("a cat"), _words("a frog"))
    payload = _payload(tokens)
    assert (payload["columns"], payload["chunks"]) == (154, 2)
    assert _refs(payload) == {1: "a", 2: "cat", 78: "a#2", 79: "frog"}
    starts = [i["c"] for i in payload["items"] if i["k"] == "start"]
    assert starts == [0, 77]


PROMPTS = [
    CAT_FROG,
    _columns(_words("a cat , a cat , 2 cats and (frog) [frog] frog:1.2 frog")),
    _columns([("super", "token", False), ("cali", "token", False), ("fragi", "token", True)] * 3),
    _columns(_words(" ".join(f"w{i % 7}" for i in range(75))), _words("w1 w2 w3")),
    _columns([("Cat", "token", True), ("CAT", "token", True), ("emb", "embedding", True)]),
]


@pytest.mark.parametrize("tokens", PROMPTS)
def test_every_ref_maps_back_to_its_column(tokens):
    refs = subject_refs(tokens)
    assert set(refs) == {t.column for t in tokens if t.selectable}
    for column, ref in refs.items():
        found = map_subjects(tokens, ref)
        assert found.ok, (ref, found.errors)
        assert found.columns == [column], ref


def test_refs_joined_as_the_js_writes_them_map_to_all_columns_in_order():
    tokens = PROMPTS[1]
    refs = subject_refs(tokens)
    assert map_subjects(tokens, ", ".join(refs.values())).columns == list(refs)


def test_empty_prompt():
    payload = _payload(_columns([]), "")
    assert payload["items"] == [
        {"c": 0, "k": "start", "t": "<start>", "w": True},
        {"c": 1, "k": "end", "t": "<end>", "w": True},
        {"c": 2, "k": "pad", "t": "", "w": True, "n": 75},
    ]
    assert _refs(payload) == {}


def test_long_prompt_is_fast():
    words = [(f"w{i % 50}", "token", True) for i in range(75)]
    tokens = _columns(*([words] * 10))  # 770 columns, every word repeated
    start = time.perf_counter()
    payload = _payload(tokens)
    assert time.perf_counter() - start < 1.0
    assert payload["chunks"] == 10
    assert len(_refs(payload)) == 750


def test_tokenizer_failure_becomes_an_error_payload(caplog):
    def broken(_prompt: str) -> list[TokenColumn]:
        msg = "no model loaded"
        raise RuntimeError(msg)

    with caplog.at_level(logging.ERROR, logger="attend_excite"):
        payload = json.loads(table_payload("a cat", columns_fn=broken))
    assert payload["error"] == "Could not tokenize the prompt: no model loaded"
    assert payload["items"] == []
    assert payload["prompt"] == "a cat"
    assert "could not tokenize" in caplog.text


def test_default_tokenizer_is_ae_webui_tokenize(monkeypatch):
    import ae_webui

    fake = types.ModuleType("ae_webui.tokenize")
    seen: list[str] = []
    fake.columns_for_prompt = lambda prompt: seen.append(prompt) or CAT_FROG
    monkeypatch.setitem(sys.modules, "ae_webui.tokenize", fake)
    monkeypatch.setattr(ae_webui, "tokenize", fake, raising=False)
    payload = json.loads(table_payload("a cat and a frog"))
    assert seen == ["a cat and a frog"]
    assert _refs(payload)[5] == "frog"


def test_none_prompt_is_empty_and_json_is_compact():
    text = table_payload(None, columns_fn=lambda p: _columns([]))  # type: ignore[arg-type]
    assert json.loads(text)["prompt"] == ""
    assert ": " not in text


def test_payload_for_is_plain_data():
    assert json.loads(json.dumps(payload_for("x", CAT_FROG))) == payload_for("x", CAT_FROG)


# --- with the WebUI stand-in: the real tokenizer path and the gradio parts ---------------------------------


@pytest.fixture
def webui(monkeypatch):
    """The stand-in's modules with a tiny model: the one other tests loaded, else a fresh SD1 one."""
    pytest.importorskip("gradio")
    monkeypatch.syspath_prepend(str(STUB))
    from modules import sd_models, shared

    if shared.sd_model is None:
        sd_models.load_model(sd_models.make_sd1_model(0))
    return shared.sd_model


def test_real_tokenizer_columns(webui):
    payload = json.loads(table_payload("a (cat:1.2) and a frog BREAK a frog"))
    assert payload["error"] == ""
    assert payload["chunks"] == 2
    assert _refs(payload) == {1: "a", 2: "cat", 3: "and", 4: "a#2", 5: "frog", 78: "a#3", 79: "frog#2"}


def _elem_id(tab: str):
    return lambda item: f"script_{tab}_attend_and_excite_{item}"


def _dependencies(demo) -> list[dict]:
    return demo.config["dependencies"]


def test_build_token_table_parts_and_events(webui):
    import gradio as gr

    with gr.Blocks() as demo:
        subjects = gr.Textbox(elem_id=_elem_id("img2img")("subjects"))
        table = token_table.attach("img2img", _elem_id("img2img"), {"subjects": subjects})
    assert table.ids == {
        "table": "script_img2img_attend_and_excite_token_table",
        "prompt": "script_img2img_attend_and_excite_token_prompt",
        "payload": "script_img2img_attend_and_excite_token_payload",
        "button": "script_img2img_attend_and_excite_token_button",
        "refresh": "script_img2img_attend_and_excite_token_refresh",
        "subjects": "script_img2img_attend_and_excite_subjects",
    }
    assert table.prompt.visible is False
    assert table.payload.visible is False
    assert table.button.visible is False
    html = table.container.value
    assert 'class="ae-token-table"' in html
    assert 'data-ae-tab="img2img"' in html
    assert 'data-ae-subjects="script_img2img_attend_and_excite_subjects"' in html
    assert 'data-ae-button="script_img2img_attend_and_excite_token_button"' in html

    deps = _dependencies(demo)
    by_id = {b._id: b for b in (table.button, table.refresh, table.prompt, table.payload, subjects)}
    clicks = [d for d in deps if d["trigger"] == "click"]
    assert sorted(d["targets"][0] for d in clicks) == sorted([table.button._id, table.refresh._id])
    for d in clicks:
        assert d["backend_fn"] is True
        assert d["queue"] is False
        assert [by_id[i] for i in d["inputs"]] == [table.prompt]
        assert [by_id[i] for i in d["outputs"]] == [table.payload]
        assert 'promptText("img2img")' in d["js"]
    renders = [d for d in deps if d["js"] and 'render("img2img"' in d["js"]]
    assert len(renders) == 2
    assert all(d["backend_fn"] is False and d["trigger_after"] is not None for d in renders)
    changes = [d for d in deps if d["js"] and "subjectsChanged" in d["js"]]
    assert len(changes) == 1
    assert (changes[0]["targets"], changes[0]["trigger"]) == ([subjects._id], "change")


def test_click_handler_returns_the_payload(webui):
    assert _refs(json.loads(token_table._on_tokenize("a cat and a frog")))[2] == "cat"


def test_bad_tab_and_subjects_without_id_are_rejected(webui):
    import gradio as gr

    with gr.Blocks():
        with pytest.raises(ValueError, match="plain name"):
            token_table.build_token_table('txt2img"); alert(1); ("', _elem_id("txt2img"))
        table = token_table.build_token_table("txt2img", _elem_id("txt2img"))
        with pytest.raises(ValueError, match="elem_id"):
            table.wire_subjects(gr.Textbox())


def test_groups_box_is_named_to_js_and_rehighlights(webui):
    import gradio as gr

    ids = _elem_id("txt2img")
    with gr.Blocks() as demo:
        subjects = gr.Textbox(elem_id=ids("subjects"))
        groups = gr.Textbox(elem_id=ids("groups"))
        table = token_table.attach("txt2img", ids, {"subjects": subjects, "groups": groups})
    assert table.ids["groups"] == "script_txt2img_attend_and_excite_groups"
    assert 'data-ae-groups="script_txt2img_attend_and_excite_groups"' in table.container.value
    changes = [d for d in _dependencies(demo) if d["js"] and "groupsChanged" in d["js"]]
    assert [(d["targets"], d["trigger"], d["backend_fn"]) for d in changes] == [([groups._id], "change", False)]
    with gr.Blocks(), pytest.raises(ValueError, match="groups textbox needs an elem_id"):
        token_table.build_token_table("txt2img", ids).wire_groups(gr.Textbox())
