"""SD.Next's real page in Chromium with this extension installed: our accordion builds fully in txt2img and
img2img (no dead half-built box), its controls are there, and the token table answers for the typed prompt (the
columns of SD.Next's own prompt encoding), with no console error from our code. A screenshot goes to
artifacts/.

Nothing leaves the machine: requests to any other host are aborted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realhost.hostenv import ROOT
from tests.realhost.server import WebUI
from tests.realhost.test_page import CHROMIUM, CHROMIUM_ARGS, OURS, _only_local

pytestmark = [pytest.mark.realhost, pytest.mark.browser]
CONTROLS = ("subjects", "steps_altered", "thresholds", "step_size", "max_refine", "smoothing", "sigma",
            "attention_res", "hires", "save_maps", "objective", "groups")


@pytest.fixture
def page(sdnext: WebUI, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium; tools/setup.sh installs it with apt)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(60_000)
        context.route("**/*", _only_local)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}\n{getattr(e, 'stack', '')}"))
        tab.on("console", lambda m: errors.append(f"{m.text} @ {m.location}") if m.type == "error" else None)
        tab.goto(sdnext.url)
        tab.wait_for_selector("#txt2img_prompt textarea", timeout=180_000)
        yield tab, errors
        context.close()


def _open(tab: Any, selector: str) -> None:
    """Open a gradio 3 accordion (its .label-wrap) unless it is open already."""
    label = tab.locator(f"{selector} > .label-wrap").first
    if "open" not in (label.get_attribute("class") or ""):
        label.click()


def test_accordion_controls_and_token_table(sdnext: WebUI, page: tuple[Any, list[str]]) -> None:
    from playwright.sync_api import expect

    tab, errors = page
    tab.locator("#txt2img_prompt textarea").fill("a cat and a frog")
    ours = "#script_txt2img_attend_and_excite_"
    _open(tab, "#txt2img_script_alwayson")  # SD.Next's "Extensions" accordion around extension scripts
    _open(tab, f"{ours}enable")
    _open(tab, f"{ours}advanced")
    for name in CONTROLS:
        expect(tab.locator(f"{ours}{name}").first).to_be_visible()
    table = tab.locator(f"{ours}token_table").first  # gradio 3 nests two elements with that id
    expect(table).to_be_visible()
    try:  # the columns of SD.Next's own prompt encoding (ae_webui/pipeline_prompts.py): one 77-column chunk
        expect(table.locator(".ae-tt-summary")).to_contain_text("77 columns, 1 chunk", timeout=60_000)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- the host's log:\n{sdnext.log_tail(60)}") from None
    expect(table.locator(".ae-tok[data-col='2']")).to_contain_text("cat")
    expect(table.locator(".ae-tok[data-col='5']")).to_contain_text("frog")
    for column in (2, 5):  # shift-click: the words go into Groups, Subjects stays as it was
        table.locator(f".ae-tok[data-col='{column}']").click(modifiers=["Shift"])
    expect(tab.locator(f"{ours}groups textarea").first).to_have_value("cat frog")
    expect(tab.locator(f"{ours}subjects textarea").first).to_have_value("")
    assert tab.locator("#script_img2img_attend_and_excite_subjects").count() == 1, "img2img has its accordion"
    shot = ROOT / "artifacts" / "real_sdnext_page.png"
    shot.parent.mkdir(exist_ok=True)
    tab.locator(f"{ours}enable").first.screenshot(path=str(shot))
    mine = [e for e in errors if any(k in e for k in OURS)]
    assert mine == [], mine
