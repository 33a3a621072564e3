"""ComfyUI's own page in Chromium: the example workflow loads, the node is added from the node search (double-click
on the canvas, type, Enter), the prompt is queued from the page and the scores appear on the Attend and Excite
node. Screenshots go to artifacts/. Nothing leaves the machine: requests to other hosts are aborted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ae_lib.objectives import OBJECTIVES
from tests.comfy.server import PACK_NAME
from tests.realhost.hostenv import ROOT
from tests.realhost.test_page import CHROMIUM, CHROMIUM_ARGS, _only_local

pytestmark = [pytest.mark.comfyui, pytest.mark.browser]
EXAMPLE = ROOT / "example_workflows" / "attend_and_excite.json"
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def page(comfy: Any) -> Iterator[tuple[Any, list[str]]]:
    """ComfyUI's page in Debian's chromium (the WebUI page tests' browser set-up), with the graph ready."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium; tools/setup.sh installs it with apt)")
    sync_api = pytest.importorskip("playwright.sync_api")
    comfy.post("/settings/Comfy.TutorialCompleted", True)  # no first-run template dialog over the canvas
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1600, "height": 900})
        tab.set_default_timeout(60_000)
        tab.route("**/*", _only_local)
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        tab.goto(comfy.url)
        # the page loads its default workflow once it is up; ours is loaded after that
        tab.wait_for_function("() => window.app && window.app.graph && window.app.graph.nodes.length > 0",
                              timeout=120_000)
        yield tab, errors
        browser.close()


def _count(tab: Any, node_type: str) -> int:
    return tab.evaluate(f"() => window.app.graph.nodes.filter(n => n.type === {node_type!r}).length")


def test_add_the_node_from_the_menu_queue_the_example_and_see_the_scores(comfy: Any, page: Any) -> None:
    tab, errors = page
    workflow = json.loads(EXAMPLE.read_text())
    ckpt = next(n for n in workflow["nodes"] if n["type"] == "CheckpointLoaderSimple")["widgets_values"][0]
    comfy.link_checkpoint(ckpt, "sd15")
    # as the template browser does: the pack's template served by ComfyUI, loaded into the graph
    tab.evaluate(f"""async () => {{
        const r = await fetch('/api/workflow_templates/{PACK_NAME}/{EXAMPLE.name}');
        await window.app.loadGraphData(await r.json()); }}""")
    assert _count(tab, "AttendAndExcite") == 1, "the example workflow did not load"
    # The example predates the objective and groups inputs: the page gives them their widgets at the defaults
    # (the paper's objective, a COMBO of every objective) and keeps the saved values in their own widgets.
    widgets = tab.evaluate("""() => Object.fromEntries(window.app.graph.nodes.find(n => n.type === 'AttendAndExcite')
        .widgets.map(w => [w.name, [w.type, w.value, (w.options && w.options.values) || null]]))""")
    assert widgets["objective"][:2] == ["combo", "excite"] and set(widgets["objective"][2]) == set(OBJECTIVES)
    assert widgets["groups"][1] == "" and widgets["subjects"][1] == "cat, frog" and widgets["attention_res"][1] == 0

    # Add one from the node search, the way a user does: double-click the empty canvas, type, Enter.
    box = tab.locator("canvas#graph-canvas").bounding_box()
    tab.mouse.dblclick(box["x"] + 200, box["y"] + box["height"] - 120)
    search = tab.locator("input[placeholder*='Search' i]").first
    search.wait_for(state="visible")
    search.fill("Attend and Excite")
    tab.wait_for_timeout(500)
    tab.keyboard.press("Enter")
    tab.wait_for_function("() => window.app.graph.nodes.filter(n => n.type === 'AttendAndExcite').length === 2")
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "comfyui_node_added.png"))
    tab.evaluate("""() => { const g = window.app.graph;
        const added = g.nodes.filter(n => n.type === 'AttendAndExcite').at(-1); g.remove(added); }""")

    # CPU: a small image and few steps; everything else as shipped (but the seed).
    tab.evaluate("""() => { const set = (type, name, value) => {
            const node = window.app.graph.nodes.find(n => n.type === type);
            node.widgets.find(w => w.name === name).value = value; };
        set('EmptyLatentImage', 'width', 64); set('EmptyLatentImage', 'height', 64); set('KSampler', 'steps', 4);
        set('KSampler', 'seed', 7);  // not a prompt ComfyUI has cached (the API test runs the example with seed 42)
        window.app.graph.setDirtyCanvas(true, true); }""")
    tab.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    tab.get_by_text("image 1: cat").first.wait_for(state="visible", timeout=300_000)
    text = tab.evaluate("""() => window.app.graph.nodes.find(n => n.type === 'AttendAndExcite')
        .widgets.find(w => w.name === '$$node-text-preview').value""")
    assert text.startswith("Attend and Excite\nimage 1: cat "), text
    tab.wait_for_timeout(1000)
    tab.screenshot(path=str(ARTIFACTS / "comfyui_scores.png"))
    assert not [e for e in errors if "attend" in e.lower()], errors
