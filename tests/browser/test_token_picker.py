"""The token picker in a real browser: Debian's chromium driven by playwright against a gradio 3.41.2 page built
from the extension's own ui() (tests/browser/webui_page.py, in its own process on 127.0.0.1).

Nothing leaves the machine: the page's requests to any other host (gradio's web fonts) are aborted.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "artifacts" / "token_picker.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]
SERVER_START_S = 60
TIMEOUT_MS = 10_000
ID = "script_{tab}_attend_and_excite_{item}"
# Console noise that is not ours: gradio's theme asks for Google fonts, which the route below aborts.
FOREIGN_ERRORS = ("Failed to load resource", "Unable to preload CSS")


def _requirements() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium; tools/setup.sh installs it with apt)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (requirements-dev.txt)")
    pytest.importorskip("gradio", reason="gradio not installed (requirements-dev.txt)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, log: list[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        log.append(line)
        if line.startswith("READY "):
            return line.split(" ", 1)[1].strip()
    pytest.fail("the test page did not start:\n" + "".join(log[-40:]))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    _requirements()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tests.browser.webui_page", "--port", str(_free_port())]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    try:
        yield _wait_ready(proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _only_local(route: Any) -> None:
    if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="module")
def browser_page(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 800},
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", _only_local)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(FOREIGN_ERRORS) else None,
        )
        page.goto(server)
        page.wait_for_selector("#txt2img_prompt textarea")
        yield page, errors
        context.close()


def _ids(tab: str) -> dict[str, str]:
    return {k: "#" + ID.format(tab=tab, item=k) for k in ("enable", "subjects", "token_table", "token_refresh")}


def _open(page: Any, tab: str) -> dict[str, str]:
    """Switch to the tab and open the script's accordion (closed by default: A&E is off)."""
    from playwright.sync_api import expect

    page.locator(".tab-nav button", has_text=tab).first.click()
    expect(page.locator(f"#{tab}_prompt textarea")).to_be_visible()
    ids = _ids(tab)
    if not page.locator(f"{ids['subjects']} textarea").is_visible():
        page.locator(f"{ids['enable']} > .label-wrap").click()
    return ids


def _token(page: Any, ids: dict[str, str], ref: str) -> Any:
    return page.locator(f'{ids["token_table"]} button.ae-tok[data-ref="{ref}"]')


def _pressed(page: Any, ids: dict[str, str]) -> list[str]:
    return page.locator(f"{ids['token_table']} button.ae-tok.ae-selected").evaluate_all(
        "els => els.map(e => e.dataset.ref + ':' + e.getAttribute('aria-pressed'))"
    )


def _echo(page: Any, tab: str) -> Any:
    """The Subjects value as gradio holds it: copied through Python by the page's echo button."""
    page.locator(f"#{tab}_test_echo_button").click()
    return page.locator(f"#{tab}_test_echo textarea")


def test_pick_subjects_by_clicking_tokens(browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    ids = _open(page, "txt2img")
    subjects = page.locator(f"{ids['subjects']} textarea")
    page.locator("#txt2img_prompt textarea").press_sequentially("a cat and a frog")

    # The table appears (debounced) with the tokenizer's columns; fixed columns are not buttons.
    expect(_token(page, ids, "frog")).to_be_visible()
    table = page.locator(ids["token_table"])
    assert table.locator("button.ae-tok").evaluate_all("els => els.map(e => e.dataset.col)") == [
        "1", "2", "3", "4", "5",
    ]  # fmt: skip
    assert _token(page, ids, "a#2").get_attribute("data-col") == "4"
    assert table.locator(".ae-fixed").count() == 3  # start, end, one run of padding

    _token(page, ids, "cat").click()
    _token(page, ids, "frog").click()
    expect(subjects).to_have_value("cat, frog")
    assert _pressed(page, ids) == ["cat:true", "frog:true"]
    expect(_echo(page, "txt2img")).to_have_value("cat, frog")  # gradio saw the input events
    page.mouse.move(0, 0)  # no hover outline in the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    _token(page, ids, "cat").click()
    expect(subjects).to_have_value("frog")
    assert _pressed(page, ids) == ["frog:true"]
    assert _token(page, ids, "cat").get_attribute("aria-pressed") == "false"

    # Keyboard: tokens are buttons; Enter toggles, arrows move between tokens.
    _token(page, ids, "cat").focus()
    page.keyboard.press("Enter")
    expect(subjects).to_have_value("frog, cat")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.ref") == "and"
    page.keyboard.press("Space")
    expect(subjects).to_have_value("frog, cat, and")
    page.keyboard.press("Space")
    expect(subjects).to_have_value("frog, cat")

    # Typing in Subjects highlights too, with the same rules as the Python side ("a#2", column indices).
    subjects.fill("(CAT:1.2) frog#1 () 01")
    assert _pressed(page, ids) == ["a:true", "cat:true", "frog:true"]
    subjects.fill("a#2, 5, dog")
    assert _pressed(page, ids) == ["a#2:true", "frog:true"]
    expect(table.locator(".ae-tt-missing")).to_have_text("Not in this prompt: dog")
    _token(page, ids, "frog").click()  # "5" is frog's column: clicking frog removes it
    expect(subjects).to_have_value("a#2, dog")

    # A prompt set by code (paste, "send to") fires no input event: the refresh button re-tokenizes.
    page.locator("#txt2img_prompt textarea").evaluate("el => { el.value = 'a dog BREAK a frog'; }")
    page.locator(ids["token_refresh"]).click()
    expect(_token(page, ids, "dog")).to_have_attribute("data-col", "2")
    expect(_token(page, ids, "frog")).to_have_attribute("data-col", "79")  # BREAK: second chunk
    assert table.locator(".ae-tt-chunk").count() == 2
    assert errors == []


def test_img2img_has_its_own_table_filled_when_it_shows(browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    before = page.locator(f"{_ids('txt2img')['subjects']} textarea").input_value()
    page.locator(".tab-nav button", has_text="img2img").first.click()
    page.locator("#img2img_prompt textarea").press_sequentially("a watermelon")
    ids = _ids("img2img")
    page.wait_for_timeout(800)  # past the debounce: a closed accordion asks nothing
    assert page.locator(f"{ids['token_table']} button.ae-tok").count() == 0
    _open(page, "img2img")
    expect(_token(page, ids, "watermelon")).to_be_visible()
    _token(page, ids, "watermelon").click()
    expect(page.locator(f"{ids['subjects']} textarea")).to_have_value("watermelon")
    assert page.locator(f"{_ids('txt2img')['subjects']} textarea").input_value() == before
    assert errors == []


def _grouped(page: Any, ids: dict[str, str]) -> list[str]:
    return page.locator(f"{ids['token_table']} button.ae-tok.ae-grouped").evaluate_all(
        "els => els.map(e => e.dataset.ref + ':' + e.dataset.group)"
    )


def test_build_groups_by_shift_click_and_in_groups_mode(browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    ids = _open(page, "txt2img")
    table = page.locator(ids["token_table"])
    subjects = page.locator(f"{ids['subjects']} textarea")
    groups = page.locator("#" + ID.format(tab="txt2img", item="groups") + " textarea")
    subjects.fill("cat")
    groups.fill("")
    page.locator("#txt2img_prompt textarea").fill("a red cat and a blue frog")
    expect(_token(page, ids, "blue")).to_be_visible()

    # Shift-click: into the current (last) group; Subjects and its highlight stay as they were.
    _token(page, ids, "red").click(modifiers=["Shift"])
    _token(page, ids, "cat").click(modifiers=["Shift"])
    expect(groups).to_have_value("red cat")
    expect(subjects).to_have_value("cat")
    assert _pressed(page, ids) == ["cat:true"]
    table.locator(".ae-tt-newgroup").click()
    expect(groups).to_have_value("red cat; ")

    # Groups mode: plain clicks build groups; the toggle says so.
    mode = table.locator(".ae-tt-groupmode")
    mode.click()
    expect(mode).to_have_attribute("aria-pressed", "true")
    _token(page, ids, "blue").click()
    _token(page, ids, "frog").click()
    expect(groups).to_have_value("red cat; blue frog")
    assert _grouped(page, ids) == ["red:1", "cat:1", "blue:2", "frog:2"]
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOT.with_name("token_groups.png")), full_page=True)
    _token(page, ids, "cat").click()  # in a group: it leaves it
    expect(groups).to_have_value("red; blue frog")
    expect(subjects).to_have_value("cat")
    page.locator("#txt2img_test_echo_groups_button").click()
    expect(page.locator("#txt2img_test_echo_groups textarea")).to_have_value("red; blue frog")  # gradio saw it

    # Mode off: clicks pick subjects again.
    mode.click()
    expect(mode).to_have_attribute("aria-pressed", "false")
    _token(page, ids, "frog").click()
    expect(subjects).to_have_value("cat, frog")
    expect(groups).to_have_value("red; blue frog")

    # Typing in Groups highlights with the Subjects rules; words not in the prompt are named.
    groups.fill("(RED:1.1) cat; 7, dog")  # 7: frog's column
    assert _grouped(page, ids) == ["red:1", "cat:1", "frog:2"]
    expect(table.locator(".ae-tt-missing")).to_have_text("Not in this prompt: dog")
    assert errors == []
