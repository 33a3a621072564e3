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

from ae_comfy.inputs import PARAM_FIELDS
from tests.comfy.server import PACK_NAME, PromptRejected, window_scores
from tests.comfy.workflows import PROMPT, Graph, ae_and_plain, to_api

pytestmark = pytest.mark.comfyui
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_workflows" / "attend_and_excite.json"
SCORE_STEPS = 8  # window = steps 0-3: three updates before the end-of-window score


def test_the_node_is_in_object_info_with_the_webui_parameters(comfy: Any) -> None:
    info = comfy.get("/object_info/AttendAndExcite")["AttendAndExcite"]
    assert info["display_name"] == "Attend and Excite"
    required = info["input"]["required"]
    assert list(required)[:3] == ["model", "clip", "text"]
    for spec in PARAM_FIELDS:  # names, defaults and ranges of the one parameter model
        _kind, options = required[spec.name]
        assert options["default"] == spec.default, spec.name
        if spec.minimum is not None:
            assert (options["min"], options["max"]) == (spec.minimum, spec.maximum), spec.name
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
