"""The script under a Script API like SD.Next's (vladmandic/sdnext 058a7f0), without starting SD.Next.

SD.Next's `modules/scripts_manager.py:Script` has no `tabname` (it sets `parent` before `ui()`), no
`process_before_every_sampling` and no `post_sample`; its API calls every script's `ui()` without a try; its
X/Y/Z `AxisOption` takes `fmt=`; its create_infotext writes callables as they are. The real SD.Next runs the same
checks in tests/realhost/test_sdnext.py; these stand-ins keep them in the fast suite.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from modules import processing, script_callbacks, scripts

from ae_lib.params import FIELDS
from ae_webui import hosts, state, xyz
from ae_webui import ui as ae_ui
from tests import webui_host as host
from tests.webui_host import ROOT, ae, run_txt2img


class SDNextScript:
    """modules/scripts_manager.py:Script at 058a7f0 as far as an AlwaysOn script touches it."""

    parent: str | None = None
    name: str | None = None
    filename: str | None = None
    args_from = 0
    args_to = 0
    alwayson = False
    is_txt2img = False
    is_img2img = False
    infotext_fields: list | None = None
    paste_field_names: list[str] | None = None

    def title(self) -> str:
        raise NotImplementedError

    def ui(self, is_img2img: bool) -> Any:
        pass

    def show(self, is_img2img: bool) -> Any:
        return True

    def process(self, p: Any, *args: Any) -> None:
        pass

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        pass

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        pass

    def elem_id(self, item_id: str) -> str:
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{self.parent}_{title}_{item_id}"


class SDNextAxisOption:
    """scripts/xyz/xyz_grid_classes.py:AxisOption at 058a7f0: the formatter is `fmt`."""

    def __init__(self, label, tipe, apply, fmt=None, confirm=None, cost=0.0, choices=None):
        self.label, self.type, self.apply, self.format_value = label, tipe, apply, fmt
        self.confirm, self.cost, self.choices = confirm, cost, choices


def sdnext_create_infotext(p: Any, index: int = 0) -> str:
    """modules/processing_info.py:create_infotext at 058a7f0, its last part: extra_generation_params as they are."""
    args = dict(p.extra_generation_params)
    return ", ".join(f"{k}: {v}" for k, v in args.items() if v is not None)


@pytest.fixture(autouse=True)
def _host():
    host.start()


@pytest.fixture
def sdnext_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Our script file loaded as SD.Next loads it, over SD.Next's Script base (callbacks recorded, not run)."""
    registered: list[Any] = []
    monkeypatch.setattr(scripts, "Script", SDNextScript)
    monkeypatch.setattr(script_callbacks, "on_before_ui", registered.append)
    monkeypatch.setattr(script_callbacks, "on_ui_settings", registered.append)
    spec = importlib.util.spec_from_file_location("attend_and_excite.py", ROOT / "scripts" / "attend_and_excite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    script = module.AttendAndExciteScript()
    script.callbacks = registered
    return script


def _build(script: Any, parent: str) -> list[Any]:
    script.parent = parent  # modules/scripts_manager.py: create_script_ui, before ui()
    with gr.Blocks():
        return script.ui(parent == "img2img")


@pytest.mark.parametrize("parent", ["txt2img", "img2img", "control"])
def test_ui_builds_fully_without_tabname(sdnext_script: Any, parent: str) -> None:
    assert not hasattr(sdnext_script, "tabname")
    components = _build(sdnext_script, parent)
    assert len(components) == len(FIELDS)
    assert all(c.elem_id.startswith(f"script_{parent}_attend_and_excite_") for c in components)
    assert components[1].elem_id == f"script_{parent}_attend_and_excite_subjects"
    assert len(sdnext_script.infotext_fields) == sum(1 for f in FIELDS if f.name == "enabled" or f.infotext)


def test_token_table_is_named_by_parent(sdnext_script: Any) -> None:
    with gr.Blocks() as blocks:
        sdnext_script.parent = "img2img"
        sdnext_script.ui(True)
    tables = [b for b in blocks.blocks.values() if isinstance(b, gr.HTML) and "ae-token-table" in str(b.value)]
    assert len(tables) == 1 and 'data-ae-tab="img2img"' in tables[0].value


def test_tab_name_prefers_what_the_script_object_has() -> None:
    assert ae_ui.tab_name(SimpleNamespace(tabname="img2img", parent="txt2img")) == "img2img"
    assert ae_ui.tab_name(SimpleNamespace(parent="control")) == "control"
    assert ae_ui.tab_name(SimpleNamespace(tabname=None, parent=None, is_img2img=True)) == "img2img"


def test_an_error_while_building_the_ui_never_escapes(sdnext_script: Any, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated gradio incompatibility")

    monkeypatch.setattr(ae_ui, "build", broken)
    with caplog.at_level(logging.ERROR, logger="attend_and_excite"):
        state.LOG.propagate = True
        try:
            assert _build(sdnext_script, "txt2img") == []  # the API's init_default_script_args skips it
        finally:
            state.LOG.propagate = False
    assert "simulated gradio incompatibility" in caplog.text


def test_enabled_without_the_sampling_hook_says_it_did_not_act(sdnext_script: Any) -> None:
    """SD.Next never calls process_before_every_sampling: no silent no-op, the info says so (plain text)."""
    p = SimpleNamespace(extra_generation_params={})
    sdnext_script.process(p, {"enabled": True, "subjects": "cat, frog"})
    error = p.extra_generation_params["AE error"]
    assert error.startswith("A&E did not act:") and "process_before_every_sampling" in error
    assert p.extra_generation_params["AE subjects"] == "cat, frog"
    assert all(isinstance(v, str) for v in p.extra_generation_params.values())
    assert state.get_state(p) is None, "A&E stands down: nothing for later hooks"

    off = SimpleNamespace(extra_generation_params={})
    sdnext_script.process(off, [False, "cat"])
    assert off.extra_generation_params == {}, "nothing is written when A&E is off"


def test_a_hook_error_stands_down_and_is_reported(sdnext_script: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ae_webui import lifecycle

    def broken(p: Any, args: Any) -> None:
        raise ValueError("simulated bug")

    monkeypatch.setattr(lifecycle, "begin", broken)
    p = SimpleNamespace(extra_generation_params={"AE error": lambda **_: "x"})
    state.set_state(p, SimpleNamespace(session=None))
    sdnext_script.process(p, {"enabled": True, "subjects": "cat"})  # raises nothing
    assert state.get_state(p) is None
    assert p.extra_generation_params["AE error"] == "A&E stood down: process raised ValueError: simulated bug"


def test_xyz_axes_register_with_fmt(monkeypatch: pytest.MonkeyPatch) -> None:
    module = SimpleNamespace(axis_options=[], AxisOption=SDNextAxisOption)
    monkeypatch.setattr(xyz, "_xyz_module", lambda: module)
    xyz.register_axes()
    ours = [o for o in module.axis_options if o.label.startswith(xyz.PREFIX)]
    assert [o.label.removeprefix(xyz.PREFIX) for o in ours] == [label for _, label, _ in xyz.AXES]
    assert ours[2].format_value(None, ours[2], 7.5) == "Step size: 7.5"
    p = SimpleNamespace()
    ours[2].apply(p, 7.5, [7.5])
    assert p.ae_overrides == {"step_size": 7.5, "enabled": True}
    xyz.register_axes()
    assert len(module.axis_options) == len(ours), "registering again adds nothing"


def test_registered_callbacks_never_raise(sdnext_script: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("no such host attribute")

    monkeypatch.setattr(xyz, "_xyz_module", broken)
    from ae_webui import settings

    monkeypatch.setattr(settings.shared, "opts", None)  # add_option on None raises AttributeError
    for callback in sdnext_script.callbacks:
        assert callback() is None


def test_infotext_callables_read_from_the_host() -> None:
    hosts.infotext_callables.cache_clear()
    try:
        assert hosts.infotext_callables() is True  # the stand-in's A1111 create_infotext
        original = processing.create_infotext
        processing.create_infotext = sdnext_create_infotext
        hosts.infotext_callables.cache_clear()
        try:
            assert hosts.infotext_callables() is False
        finally:
            processing.create_infotext = original
    finally:
        hosts.infotext_callables.cache_clear()


def test_plain_infotext_gives_each_image_its_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where create_infotext does not call callables, each image's values are plain strings, written before its
    infotext: the same image infotexts as with callables. (The grid's infotext, made after the last image with
    no script hook in between, carries the last image's values there.)"""
    callable_mode, _ = run_txt2img(ae(), batch_size=2, steps=4, seed=3)
    seen: list[Any] = []
    original = processing.create_infotext

    def recording(p: Any, *args: Any, **kwargs: Any) -> str:
        seen.extend(v for k, v in p.extra_generation_params.items() if k.startswith("AE "))
        return original(p, *args, **kwargs)

    monkeypatch.setattr(hosts, "infotext_callables", lambda: False)
    monkeypatch.setattr(processing, "create_infotext", recording)
    plain_mode, _ = run_txt2img(ae(), batch_size=2, steps=4, seed=3)
    assert seen and all(isinstance(v, str) for v in seen)
    first = plain_mode.index_of_first_image
    assert first == callable_mode.index_of_first_image
    images = plain_mode.infotexts[first:first + 2]
    scores = [re.search(r'AE scores: "[^"]+"', t) for t in images]
    assert all(scores) and scores[0].group() != scores[1].group(), "each image has its own scores"
    assert images == callable_mode.infotexts[first:first + 2]
