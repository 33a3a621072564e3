"""The real WebUI page in Chromium: the accordion, the token table for the typed prompt, two clicks fill
Subjects, Generate, and the info under the image shows the scores. A screenshot goes to artifacts/.

Nothing leaves the machine: requests to any other host (web fonts) are aborted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realhost.conftest import generate
from tests.realhost.hostenv import ROOT
from tests.realhost.targets import SD1, Live, select

pytestmark = [pytest.mark.realhost, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ID = "script_txt2img_attend_and_excite_{item}"
OURS = ("attend_excite", "attendExcite", "Attend and Excite", "sd-webui-attend-and-excite")


@pytest.fixture(scope="module", params=SD1)
def sd1(request: pytest.FixtureRequest) -> Live:
    live = select(request, request.param)
    # Forge and Neo load the checkpoint at the first generation (until then shared.sd_model is a FakeInitialModel
    # without a tokenizer): the page is tested as a user sees it after one image.
    generate(live.webui, {"prompt": "warm up", "steps": 1})
    return live


def _only_local(route: Any) -> None:
    if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(sd1: Live, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium; tools/setup.sh installs it with apt)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        context.set_default_timeout(60_000)
        context.route("**/*", _only_local)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}\n{getattr(e, 'stack', '')}"))
        tab.on("console", lambda m: errors.append(f"{m.text} @ {m.location}") if m.type == "error" else None)
        tab.goto(sd1.webui.url)
        tab.wait_for_selector("#txt2img_prompt textarea", timeout=120_000)
        yield tab, errors
        context.close()


def _id(item: str) -> str:
    return "#" + ID.format(item=item)


def test_pick_tokens_generate_and_read_the_scores(sd1: Live, page: tuple[Any, list[str]]) -> None:
    from playwright.sync_api import expect

    tab, errors = page
    tab.locator("#txt2img_prompt textarea").fill("")
    tab.locator("#txt2img_prompt textarea").press_sequentially("a cat and a frog")
    tab.locator(f"{_id('enable')} .label-wrap").first.click()  # opening the accordion
    subjects = tab.locator(f"{_id('subjects')} textarea")
    expect(subjects).to_be_visible()
    table = tab.locator(_id("token_table"))
    frog = table.locator('button.ae-tok[data-ref="frog"]')
    expect(frog).to_be_visible(timeout=60_000)  # the table is tokenized by the host (a queued event)
    assert table.locator("button.ae-tok").evaluate_all("els => els.map(e => e.dataset.col)") == [
        "1", "2", "3", "4", "5"]
    table.locator('button.ae-tok[data-ref="cat"]').click()
    frog.click()
    expect(subjects).to_have_value("cat, frog")
    enabled = tab.locator(f"{_id('enable')} input[type=checkbox]").first
    assert enabled.is_checked(), "opening the accordion by its checkbox label turns A&E on"
    for box, value in (("#txt2img_width input[type=number]", "64"), ("#txt2img_height input[type=number]", "64"),
                       ("#txt2img_steps input[type=number]", "4")):
        tab.locator(box).first.fill(value)
        tab.locator(box).first.press("Enter")
    tab.locator("#txt2img_generate").click()
    info = tab.locator("#html_info_txt2img").first  # gradio 3 nests two elements with that id
    try:
        expect(info).to_contain_text(re.compile(r'AE scores: "cat \d\.\d+, frog \d\.\d+"'), timeout=240_000)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- the host's log:\n{sd1.webui.log_tail(80)}") from None
    expect(info).to_contain_text('AE subjects: "cat, frog"')
    shot = ROOT / "artifacts" / f"real_{sd1.target.host}_page.png"
    shot.parent.mkdir(exist_ok=True)
    tab.mouse.move(0, 0)
    tab.screenshot(path=str(shot), full_page=True)
    ours = [e for e in errors if any(k in e for k in OURS)]
    assert ours == [], ours


def test_build_groups_by_clicking_tokens_and_generate(sd1: Live, page: tuple[Any, list[str]]) -> None:
    from playwright.sync_api import expect

    tab, errors = page
    tab.locator("#txt2img_prompt textarea").fill("a red cat and a blue frog")
    tab.locator(f"{_id('enable')} .label-wrap").first.click()
    table = tab.locator(_id("token_table"))
    token = lambda ref: table.locator(f'button.ae-tok[data-ref="{ref}"]')  # noqa: E731
    expect(token("frog")).to_be_visible(timeout=60_000)
    objective = tab.locator(f"{_id('objective')} input").first
    objective.click()
    objective.fill("contrast")
    objective.press("Enter")
    token("red").click(modifiers=["Shift"])
    token("cat").click(modifiers=["Shift"])
    table.locator(".ae-tt-newgroup").click()
    table.locator(".ae-tt-groupmode").click()
    token("blue").click()
    token("frog").click()
    expect(tab.locator(f"{_id('groups')} textarea")).to_have_value("red cat; blue frog")
    expect(tab.locator(f"{_id('subjects')} textarea")).to_have_value("")
    for box, value in (("#txt2img_width input[type=number]", "64"), ("#txt2img_height input[type=number]", "64"),
                       ("#txt2img_steps input[type=number]", "4")):
        tab.locator(box).first.fill(value)
        tab.locator(box).first.press("Enter")
    tab.locator("#txt2img_generate").click()
    info = tab.locator("#html_info_txt2img").first
    try:
        number = r"-?\d\.\d+(?:e-?\d+)?"  # an objective's measure has 3 significant digits: 7.17e-05 near 0
        scores = re.compile(rf'AE scores: "red {number}, cat {number}, blue {number}, frog {number}"')
        expect(info).to_contain_text(scores, timeout=240_000)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- the host's log:\n{sd1.webui.log_tail(80)}") from None
    expect(info).to_contain_text("AE groups: red cat; blue frog")
    expect(info).to_contain_text("AE objective: contrast")
    expect(info).to_contain_text("AE measure: separation")
    ours = [e for e in errors if any(k in e for k in OURS)]
    assert ours == [], ours
