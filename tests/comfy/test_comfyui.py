"""The Attend and Excite nodes in a real ComfyUI (a125cd84, CPU) through /prompt, /history and /view.

64 px, 4 steps unless a test says otherwise; the score test runs 256 px on SD1.5 and SDXL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ae_comfy.inputs import OPTIONAL_NAMES, PARAM_FIELDS
from ae_lib.objectives import OBJECTIVES
from tests.comfy.server import PACK_NAME, PromptRejected, window_scores
from tests.comfy.workflows import PROMPT, Graph, ae_and_plain, to_api

pytestmark = pytest.mark.comfyui
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_workflows" / "attend_and_excite.json"
SCORE_STEPS = 8  # window = steps 0-3: three updates before the end-of-window score


def test_the_node_is_in_object_info_with_the_webui_parameters(comfy: Any) -> None:
    info = comfy.get("/object_info/AttendAndExcite")["AttendAndExcite"]
    assert info["display_name"] == "Attend and Excite"
    required, optional = info["input"]["required"], info["input"].get("optional", {})
    assert list(required)[:3] == ["model", "clip", "text"]
    assert list(optional) == list(OPTIONAL_NAMES) and {"objective", "groups"} <= set(optional)  # gained later
    for spec in PARAM_FIELDS:  # names, defaults and ranges of the one parameter model
        kind, options = (required | optional)[spec.name]
        assert options["default"] == spec.default, spec.name
        if spec.minimum is not None:
            assert (options["min"], options["max"]) == (spec.minimum, spec.maximum), spec.name
        if spec.choices:  # the page shows a COMBO of them
            assert kind == list(spec.choices), spec.name
    assert set(optional["objective"][0]) == set(OBJECTIVES)
    assert info["output"] == ["MODEL", "CONDITIONING"]
    assert "AttendAndExciteMaps" in comfy.get("/object_info/AttendAndExciteMaps")


def _pixels(comfy: Any, outcome: Any, node: str) -> np.ndarray:
    images = comfy.images(outcome, node)
    assert len(images) == 1, outcome.outputs(node)
    return images[0]


def test_changes_the_image_plain_runs_bit_identical_and_interrupt(comfy: Any) -> None:
    params = {"max_refine": 2}
    plain_prompt, plain_saves = ae_and_plain(with_ae=False)
    comfy.free()
    plain_a = _pixels(comfy, comfy.run(plain_prompt), plain_saves["plain"])

    comfy.free()
    both_prompt, saves = ae_and_plain(**params)
    both = comfy.run(both_prompt)
    assert both.status == "success", both.messages
    ae, plain_b = _pixels(comfy, both, saves["ae"]), _pixels(comfy, both, saves["plain"])
    assert not np.array_equal(ae, plain_a), "A&E did not change the image"
    assert np.array_equal(plain_b, plain_a), "a plain KSampler on the original MODEL in the same prompt changed"
    scores = window_scores(both.log)
    assert [label for label, _ in scores[1]] == ["cat", "frog"]

    # Interrupt inside refinement: an unreachable threshold at step 0 and up to 100 iterations.
    long_prompt, _ = ae_and_plain(with_plain=False, thresholds="0:1.0", max_refine=100, steps=8)
    start = len(comfy.log_text())
    prompt_id = comfy.queue(long_prompt)
    deadline = time.monotonic() + 120
    while "refining (at most 100" not in comfy.log_text()[start:]:
        assert time.monotonic() < deadline, comfy.log_tail()
        time.sleep(0.1)
    time.sleep(1.0)
    asked = time.monotonic()
    comfy.post("/interrupt", {})
    history = comfy.wait(prompt_id, timeout=120)
    stopped_after = time.monotonic() - asked
    kinds = [m[0] for m in history["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    assert stopped_after < 20, stopped_after
    log = comfy.log_text()[start:]
    line = next(ln for ln in log.splitlines() if "refinement iterations" in ln)
    assert "(interrupted)" in line and int(line.split(":")[1].split()[0]) < 100, line

    comfy.free()  # afterwards nothing is left patched: the plain prompt gives the same pixels
    plain_d = _pixels(comfy, comfy.run(plain_prompt), plain_saves["plain"])
    assert np.array_equal(plain_d, plain_a)


def test_bad_values_are_refused_before_sampling(comfy: Any) -> None:
    prompt, _ = ae_and_plain(with_plain=False, thresholds="0:0.05, 0.2:x")
    with pytest.raises(PromptRejected) as bad_threshold:
        comfy.queue(prompt)
    assert "0.2:x" in json.dumps(bad_threshold.value.body)
    prompt, _ = ae_and_plain(with_plain=False, step_size=500.0)
    with pytest.raises(PromptRejected) as too_big:
        comfy.queue(prompt)
    assert "value_bigger_than_max" in json.dumps(too_big.value.body)

    prompt, _ = ae_and_plain(with_plain=False, subjects="cat, dog")
    outcome = comfy.run(prompt)
    assert outcome.status == "error"
    error = outcome.message("execution_error")
    assert error["node_type"] == "AttendAndExcite"
    assert "'dog' is not a word of the prompt" in error["exception_message"]
    assert "KSampler" not in {m[1].get("node_type") for m in outcome.messages if m[0] == "executing"}


def test_refusals_stand_down_with_a_warning_and_the_image_is_made(comfy: Any) -> None:
    g = Graph("sd15")
    negative = g.encode("")
    latent = g.latent(64)
    ae = g.attend_and_excite(max_refine=1)
    saves = {}
    s = g.ksampler(g.out(ae, 0), g.out(ae, 1), g.out(negative), g.out(latent), sampler="uni_pc")
    saves["uni_pc"] = g.decode_save(g.out(s), "uni_pc")
    masked = g.add("SolidMask", value=1.0, width=64, height=64)
    noise_mask = g.add("SetLatentNoiseMask", samples=g.out(latent), mask=g.out(masked))
    s = g.ksampler(g.out(ae, 0), g.out(ae, 1), g.out(negative), g.out(noise_mask), seed=2)
    saves["mask"] = g.decode_save(g.out(s), "mask")
    replaced = g.add("AETestAttn2Replace", model=g.out(ae, 0))
    s = g.ksampler(g.out(replaced), g.out(ae, 1), g.out(negative), g.out(latent), seed=3)
    saves["attn2"] = g.decode_save(g.out(s), "attn2")
    foreign = g.encode(PROMPT + ", watercolor")  # (the same text would encode to the very same tensor: accepted)
    s = g.ksampler(g.out(ae, 0), g.out(foreign), g.out(negative), g.out(latent), seed=4)
    saves["foreign"] = g.decode_save(g.out(s), "foreign")
    outcome = comfy.run(g.nodes)
    assert outcome.status == "success", outcome.messages
    for name, node in saves.items():
        assert len(comfy.images(outcome, node)) == 1, name
    log = outcome.log
    assert "sampler 'uni_pc' is not supported" in log
    assert "inpainting denoise mask" in log
    assert "replaces the UNet's cross-attention" in log
    assert "not this node's CONDITIONING" in log
    assert "A&E image" not in log  # no run got A&E


def test_long_prompts_and_emphasis_map_to_the_encoded_columns(comfy: Any) -> None:
    """Chunk 2 of a long prompt (column 77 + j) holds "(frog:1.2)"; an index past the end names the 154 columns."""
    long_text = "a cat and " + "very " * 80 + "(frog:1.2)"
    prompt, _ = ae_and_plain(with_plain=False, text=long_text, max_refine=1)
    outcome = comfy.run(prompt)
    assert outcome.status == "success", outcome.messages
    assert [label for label, _ in window_scores(outcome.log)[1]] == ["cat", "frog"]
    prompt, _ = ae_and_plain(with_plain=False, text=long_text, subjects="154")
    error = comfy.run(prompt).message("execution_error")
    assert "index 154 is out of range (this prompt has columns 0-153)" in error["exception_message"]


# 3 + 72 tokens fill chunk 1 (columns 1-75); chunk 2 is "very" x 8 then "frog": column 77 + 9 = 86. Off by a chunk,
# frog would be read at column 9 (a "very" of chunk 1).
CHUNK2_TEXT = "a cat and " + "very " * 80 + "{frog}"
SAME_SPOT_IN_CHUNK1 = 9


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_subject_in_chunk_2_is_scored_on_its_own_column(comfy: Any, family: str) -> None:
    """Emphasis scales the frog column of the encoded conditioning far from the rest (ComfyUI: (z - z_empty) * w +
    z_empty), so the UNet's attention piles onto that column: frog's score must jump, the column one chunk earlier
    must not. The subjects are the word "frog" (mapped by the node) and index 9 (no mapping)."""
    g = Graph(family)
    negative = g.encode("")
    latent = g.latent(64)
    for weight in ("frog", "(frog:40)"):
        ae = g.attend_and_excite(text=CHUNK2_TEXT.format(frog=weight), step_size=0.0, max_refine=0,
                                 subjects=f"frog, {SAME_SPOT_IN_CHUNK1}")
        model = g.add("AETestProbe", model=g.out(ae, 0), tag=weight)
        g.add("AETestSink", samples=g.out(g.ksampler(g.out(model), g.out(ae, 1), g.out(negative), g.out(latent),
                                                      steps=2)))
    comfy.get("/ae-test/probe")
    outcome = comfy.run(g.nodes)
    assert outcome.status == "success", outcome.messages
    runs = {r["tag"]: r["ae"] for r in comfy.get("/ae-test/probe")}
    plain, emphasised = runs["frog"]["scores"]["0"], runs["(frog:40)"]["scores"]["0"]
    print(f"{family}: frog, column {SAME_SPOT_IN_CHUNK1}: plain {plain}, emphasised {emphasised}")
    assert emphasised[0] > 0.9 and plain[0] < 0.1  # the column scored as "frog" is the emphasised one
    assert emphasised[1] < 0.1 and plain[1] < 0.1  # the same spot in chunk 1 is not


def _score_prompt(family: str, seeds: list[int]) -> dict[str, Any]:
    g = Graph(family)
    negative = g.encode("")
    latent = g.latent(256)
    nodes = {"ae": g.attend_and_excite(max_refine=0), "base": g.attend_and_excite(max_refine=0, step_size=0.0)}
    for kind, ae in nodes.items():
        for seed in seeds:
            model = g.add("AETestProbe", model=g.out(ae, 0), tag=f"{kind} {seed}")
            s = g.ksampler(g.out(model), g.out(ae, 1), g.out(negative), g.out(latent), seed=seed, steps=SCORE_STEPS)
            g.add("AETestSink", samples=g.out(s))
    return g.nodes


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_the_weakest_score_rises_over_step_size_0(comfy: Any, family: str) -> None:
    seeds = [1, 2, 3, 4]
    comfy.get("/ae-test/probe")
    outcome = comfy.run(_score_prompt(family, seeds), timeout=900)
    assert outcome.status == "success", outcome.messages
    runs = {r["tag"]: r["ae"] for r in comfy.get("/ae-test/probe")}
    rises = []
    for seed in seeds:
        ae, base = runs[f"ae {seed}"], runs[f"base {seed}"]
        assert ae["altered"] == base["altered"] == list(range(SCORE_STEPS // 2))
        rises.append(min(ae["scores"]["0"]) - min(base["scores"]["0"]))
    print(f"{family}: weakest-score rise per seed {[round(r, 3) for r in rises]}")
    assert all(r > 0 for r in rises), rises


def test_the_example_workflow_and_the_maps_node(comfy: Any) -> None:
    """The shipped workflow, converted as the page queues it; only the size and steps are cut for the CPU."""
    assert comfy.get("/api/workflow_templates")[PACK_NAME] == [EXAMPLE.stem]  # the template browser's list
    workflow = comfy.get(f"/api/workflow_templates/{PACK_NAME}/{EXAMPLE.name}")
    assert workflow == json.loads(EXAMPLE.read_text())
    prompt = to_api(workflow, comfy.get("/object_info"))
    types = {v["class_type"]: k for k, v in prompt.items()}
    assert {"AttendAndExcite", "AttendAndExciteMaps", "KSampler", "SaveImage"} <= set(types)
    ckpt = prompt[types["CheckpointLoaderSimple"]]["inputs"]["ckpt_name"]
    comfy.link_checkpoint(ckpt, "sd15")  # the example names a standard SD1.5 file; the test model stands in
    prompt[types["EmptyLatentImage"]]["inputs"].update(width=64, height=64)
    prompt[types["KSampler"]]["inputs"]["steps"] = 4
    outcome = comfy.run(prompt)
    assert outcome.status == "success", outcome.messages
    assert len(comfy.images(outcome, types["SaveImage"])) == 1
    maps = outcome.outputs(types["AttendAndExciteMaps"])
    assert maps["text"][0].startswith("image 1: cat ")
    grid = comfy.images(outcome, types["PreviewImage"])[0]
    assert grid.shape[0] > 64 and grid.shape[1] > 64 * 2  # two rows, two subject columns


def test_an_attention_resolution_no_layer_runs_at_stands_down_before_sampling(comfy: Any) -> None:
    """The heights come from the layers the model really runs at this size (SD1.5 test model: every level of a
    16x16 latent but 1; the SDXL one: 8 and 4 only); the message is in the user's unit, with no traceback, and the
    image is made. A height that exists acts."""
    cases = {"sd15 1": ("sd15", 1), "sdxl 16": ("sdxl", 16), "sdxl 8": ("sdxl", 8)}
    comfy.get("/ae-test/probe")
    for tag, (family, res) in cases.items():
        g = Graph(family)
        ae = g.attend_and_excite(attention_res=res, max_refine=1)
        model = g.add("AETestProbe", model=g.out(ae, 0), tag=tag)
        g.add("AETestSink", samples=g.out(g.ksampler(g.out(model), g.out(ae, 1), g.out(g.encode("")),
                                                      g.out(g.latent(128)), steps=4)))
        outcome = comfy.run(g.nodes)
        assert outcome.status == "success", outcome.messages
        assert "Traceback" not in outcome.log, outcome.log
    runs = {r["tag"]: r["ae"] for r in comfy.get("/ae-test/probe")}
    assert runs["sd15 1"]["warnings"] == [
        "A&E stood down: attention resolution 1 matches no cross-attention layer of this model for a 16x16 latent; "
        "its layers run at 16, 8, 4, 2 (or 0 = auto)"]
    assert runs["sdxl 16"]["warnings"] == [
        "A&E stood down: attention resolution 16 matches no cross-attention layer of this model for a 16x16 latent; "
        "its layers run at 8, 4 (or 0 = auto)"]
    assert runs["sd15 1"]["altered"] == runs["sdxl 16"]["altered"] == []
    assert runs["sdxl 8"]["warnings"] == [] and runs["sdxl 8"]["altered"] == [0, 1]


@pytest.fixture(scope="module")
def two_runs(comfy: Any) -> dict[str, Any]:
    """One A&E MODEL, two KSamplers: a base run (4 steps, window 0-1) and a hires-style second pass on its latent
    (6 steps at denoise 0.75: steps 2-7 of 8, window 0-3). Thresholds: 0.99 at step 0 (not reachable in two
    iterations), 0.5 at 60% (step 2 of 4, step 5 of 8: past either window)."""
    g = Graph("sd15")
    negative = g.encode("")
    ae = g.attend_and_excite(thresholds="0:0.99, 0.6:0.5", max_refine=2)
    base = g.ksampler(g.out(ae, 0), g.out(ae, 1), g.out(negative), g.out(g.latent(64)), steps=4)
    second = g.ksampler(g.out(ae, 0), g.out(ae, 1), g.out(negative), g.out(base), steps=6, denoise=0.75)
    g.add("AETestSink", samples=g.out(second))
    comfy.get("/ae-test/progress")
    outcome = comfy.run(g.nodes)
    assert outcome.status == "success", outcome.messages
    texts = [text for node, text in comfy.get("/ae-test/progress") if node == ae]
    return {"ae": ae, "base": base, "second": second, "outcome": outcome, "texts": texts}


def test_the_node_shows_the_scores_of_each_sampler_run(two_runs: dict[str, Any]) -> None:
    last = two_runs["texts"][-1].splitlines()
    base, second = f"sampler #{two_runs['base']}: ", f"sampler #{two_runs['second']}: "
    assert last[0] == "Attend and Excite"
    assert [line.split("image 1: ")[0] for line in last[1:]] == [base, second], last
    assert all(" cat 0." in line and ", frog 0." in line for line in last[1:])
    assert len(window_scores(two_runs["outcome"].log)) == 1 and two_runs["outcome"].log.count("A&E image 1:") == 2


def test_the_console_and_the_node_say_which_thresholds_applied_and_whether_each_was_met(
        two_runs: dict[str, Any]) -> None:
    lines = [ln.split("A&E image 1: ")[1] for ln in two_runs["outcome"].log.splitlines() if "A&E image 1: " in ln]
    assert len(lines) == 2
    base, second = (line.split("; ", 1)[1] for line in lines)
    assert base == ("thresholds: 0.99 at step 0 not met after 2 iterations (cat, frog below); "
                    "0.5 at step 2 not applied (past the window, steps 0-1)")
    assert second == "thresholds: 0.99 at step 0 not run; 0.5 at step 5 not applied (past the window, steps 0-3)"
    node = two_runs["texts"][-1]
    assert base in node and second in node and "all thresholds met" not in node
