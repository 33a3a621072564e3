"""Every sampler and scheduler of the pinned ComfyUI, and the sampler nodes, watched by the test-only probe.

The probe (tests/comfy/probe_nodes) wraps outside A&E: it sees every model call's sigma and how far the x the
sampler passed moved while A&E's wrapper ran, and each step callback's x (the sampler's own latent). Once per
step, on the call that sees the step's own latent, means: inside the window exactly the last call before each
step's callback moves x, no other call does, and the callback's x equals that call's x after A&E (the update is
in the sampler's own latent). One prompt holds every branch (64 px, 4 steps, window = steps 0 and 1).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from ae_comfy import samplers
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule
from tests.comfy.workflows import Graph

pytestmark = pytest.mark.comfyui
STEPS = 4
WINDOW = [0, 1]  # round(0.5 * 4) = 2 altered steps
PARAMS = {"max_refine": 1}  # refinement runs (step 0), kept short
# comfy/k_diffusion/sampling.py: these report the x they started from to every step callback (`x`, not `x_cur`),
# so their callback shows the x A&E moved at step 0 throughout; the step's own x is `x_cur` (= x_next).
CALLBACK_SHOWS_FIRST_X = {"ipndm", "ipndm_v", "deis"}
DDIM_UNIFORM_STEPS = {6: 7, 30: 31}  # asked -> the steps ComfyUI's ddim_uniform gives (1000 // asked strides)
PLACEMENT_STEPS = "1-12,20,25,30,50"


def _names(source: Path, variable: str) -> list[str]:
    """A list of names from comfy/samplers.py as the pinned ComfyUI defines it (KSAMPLER_NAMES + extras)."""
    tree = ast.parse((source / "comfy" / "samplers.py").read_text())
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            if isinstance(value, ast.List):
                found[name] = [ast.literal_eval(e) for e in value.elts]
            elif isinstance(value, ast.BinOp) and isinstance(value.left, ast.Name):
                found[name] = found[value.left.id] + [ast.literal_eval(e) for e in value.right.elts]
            elif isinstance(value, ast.Call) and getattr(value.func, "id", "") == "list":
                dict_name = value.args[0].id
                found[name] = next(
                    [ast.literal_eval(k) for k in n.value.keys] for n in tree.body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == dict_name)
    return found[variable]


def _sweep(comfy: Any) -> dict[str, dict[str, Any]]:
    sampler_names = _names(comfy.install.source, "SAMPLER_NAMES")
    scheduler_names = _names(comfy.install.source, "SCHEDULER_NAMES")
    g = Graph("sd15")
    negative = g.encode("")
    latent = g.latent(64)
    ae = g.attend_and_excite(**PARAMS)

    def probe(tag: str) -> list[Any]:
        return g.out(g.add("AETestProbe", model=g.out(ae, 0), tag=tag))

    def sink(samples: list[Any]) -> None:
        g.add("AETestSink", samples=samples)

    for name in sampler_names:
        sink(g.out(g.ksampler(probe(name), g.out(ae, 1), g.out(negative), g.out(latent), sampler=name,
                              steps=STEPS)))
    for name in scheduler_names:
        sink(g.out(g.ksampler(probe(f"scheduler {name}"), g.out(ae, 1), g.out(negative), g.out(latent),
                              scheduler=name, steps=STEPS)))
    for steps in DDIM_UNIFORM_STEPS:  # ComfyUI's ddim_uniform gives one step more than asked at these counts
        sink(g.out(g.ksampler(probe(f"ddim_uniform {steps}"), g.out(ae, 1), g.out(negative), g.out(latent),
                              scheduler="ddim_uniform", steps=steps)))
    # denoise < 1: 6 of int(6 / 0.75) = 8 steps, the run starts at step 2; the window is steps 0-3 of 8
    sink(g.out(g.ksampler(probe("denoise"), g.out(ae, 1), g.out(negative), g.out(latent), steps=6, denoise=0.75)))
    sink(g.out(g.add("KSamplerAdvanced", model=probe("advanced"), add_noise="enable", noise_seed=1, steps=8, cfg=7.0,
                     sampler_name="dpmpp_2m", scheduler="karras", positive=g.out(ae, 1), negative=g.out(negative),
                     latent_image=g.out(latent), start_at_step=2, end_at_step=10000,
                     return_with_leftover_noise="disable")))
    custom_model = probe("custom")
    sigmas = g.add("BasicScheduler", model=custom_model, scheduler="simple", steps=6, denoise=0.75)
    select = g.add("KSamplerSelect", sampler_name="heun")
    sink(g.out(g.add("SamplerCustom", model=custom_model, add_noise=True, noise_seed=1, cfg=7.0,
                     positive=g.out(ae, 1), negative=g.out(negative), sampler=g.out(select), sigmas=g.out(sigmas),
                     latent_image=g.out(latent))))
    adv_model = probe("custom advanced")
    guider = g.add("CFGGuider", model=adv_model, positive=g.out(ae, 1), negative=g.out(negative), cfg=7.0)
    sigmas2 = g.add("BasicScheduler", model=adv_model, scheduler="normal", steps=STEPS, denoise=1.0)
    select2 = g.add("KSamplerSelect", sampler_name="dpmpp_sde")
    noise = g.add("RandomNoise", noise_seed=1)
    sink(g.out(g.add("SamplerCustomAdvanced", noise=g.out(noise), guider=g.out(guider), sampler=g.out(select2),
                     sigmas=g.out(sigmas2), latent_image=g.out(latent))))
    batch = g.latent(64, batch=2)
    sink(g.out(g.ksampler(probe("batch"), g.out(ae, 1), g.out(negative), g.out(batch), steps=STEPS)))
    comfy.get("/ae-test/probe")  # clear
    outcome = comfy.run(g.nodes, timeout=900)
    assert outcome.status == "success", outcome.messages
    records = comfy.get("/ae-test/probe")
    by_tag = {r["tag"]: r for r in records}
    assert len(by_tag) == len(records), "each probe ran once"
    return by_tag


@pytest.fixture(scope="module")
def sweep(comfy: Any) -> dict[str, dict[str, Any]]:
    return _sweep(comfy)


def _check_once_per_step(record: dict[str, Any], window: list[int], start: int = 0) -> None:
    ae = record["ae"]
    assert ae is not None and not ae["warnings"], (record["tag"], ae)
    assert ae["altered"] == [start + k for k in window], (record["tag"], ae)
    calls, callbacks = record["calls"], record["callbacks"]
    assert ae["calls"] == len(calls)
    assert [c["step"] for c in callbacks] == list(range(len(record["sigmas"]) - 1)), record["tag"]
    main = {cb["step"]: cb["calls_so_far"] - 1 for cb in callbacks}  # the last call before each step's callback
    moved = {i for i, c in enumerate(calls) if c["moved"] > 0}
    assert moved == {main[k] for k in window}, (record["tag"], main, [c["moved"] for c in calls])
    for k in window:
        cb = callbacks[k]
        shown = main[0] if record["tag"] in CALLBACK_SHOWS_FIRST_X else main[k]
        assert shown in cb["equal_calls"], f"{record['tag']}: step {k}'s x is not the x A&E moved"
        assert abs(calls[main[k]]["sigma"] - record["sigmas"][k]) <= 1e-4 * record["sigmas"][k]


def test_every_listed_sampler_has_a_rule_or_a_reason(comfy: Any) -> None:
    for name in _names(comfy.install.source, "SAMPLER_NAMES"):
        assert (samplers.rule(name) is None) == (samplers.refusal(name) is not None), name
    assert set(samplers.REFUSED) <= set(_names(comfy.install.source, "SAMPLER_NAMES"))


def test_every_sampler_once_per_step_on_its_own_latent(comfy: Any, sweep: dict[str, dict[str, Any]]) -> None:
    names = _names(comfy.install.source, "SAMPLER_NAMES")
    checked, refused, failed = [], [], {}
    for name in names:
        record = sweep[name]
        # the sampler is recognised by its function (ComfyUI's "ddim" is sample_euler)
        assert record["ae"]["sampler"] == ("euler" if name == "ddim" else name)
        if name in samplers.REFUSED:
            assert any("not supported" in w for w in record["ae"]["warnings"]), record["ae"]
            assert record["ae"]["altered"] == [] and all(c["moved"] == 0 for c in record["calls"])
            refused.append(name)
        else:
            try:
                _check_once_per_step(record, WINDOW)
            except AssertionError as error:
                failed[name] = str(error)[:300]
            checked.append(name)
    assert not failed, failed
    multi = [n for n in checked if samplers.rule(n) is not samplers.CallRule.SINGLE]
    assert {"heun", "dpm_2", "dpmpp_2s_ancestral", "dpmpp_sde", "heunpp2", "seeds_3"} <= set(multi)
    assert sorted(refused) == sorted(samplers.REFUSED)


def test_every_scheduler(comfy: Any, sweep: dict[str, dict[str, Any]]) -> None:
    for name in _names(comfy.install.source, "SCHEDULER_NAMES"):
        record = sweep[f"scheduler {name}"]
        _check_once_per_step(record, WINDOW)
        assert record["ae"]["placement"]["start"] == 0 and record["ae"]["placement"]["total"] == STEPS


@pytest.mark.parametrize(("asked", "steps"), sorted(DDIM_UNIFORM_STEPS.items()))
def test_ddim_uniform_where_it_gives_more_steps_than_asked(sweep: dict[str, dict[str, Any]], asked: int,
                                                           steps: int) -> None:
    """A plain KSampler, euler + ddim_uniform at denoise 1: A&E acts over the window of the steps that run."""
    record = sweep[f"ddim_uniform {asked}"]
    assert len(record["sigmas"]) - 1 == steps
    assert record["ae"]["placement"]["total"] == steps and record["ae"]["placement"]["start"] == 0, record["ae"]
    _check_once_per_step(record, list(range(round(steps / 2 + 1e-9))))  # round half up: 7 -> 4, 31 -> 16


def test_every_scheduler_at_every_step_count_is_placed(comfy: Any) -> None:
    """ComfyUI's own KSampler makes the sigmas (every scheduler; 1-12, 20, 25, 30, 50 steps; denoise 1 with euler
    and with dpm_2, which drops the next-to-last sigma; denoise 0.6; KSamplerAdvanced's start_at_step), and A&E's
    placement must find the schedule's length and the run's first step in it. kl_optimal at 1 step makes NaN."""
    g = Graph("sd15")
    g.add("AETestPlacement", model=g.out(g.ckpt, 0), steps=PLACEMENT_STEPS, denoise="1.0", samplers="euler,dpm_2",
          start_at=False)
    g.add("AETestPlacement", model=g.out(g.ckpt, 0), steps=PLACEMENT_STEPS, denoise="0.6", samplers="euler",
          start_at=True)
    comfy.get("/ae-test/placement")  # clear
    outcome = comfy.run(g.nodes, timeout=600)
    assert outcome.status == "success", outcome.messages
    cases = comfy.get("/ae-test/placement")
    schedulers = _names(comfy.install.source, "SCHEDULER_NAMES")
    assert {c["scheduler"] for c in cases} == set(schedulers) and len(cases) == len(schedulers) * (16 * 3 + 15)
    not_finite = [(c["scheduler"], c["steps"]) for c in cases if not c["finite"]]
    assert set(not_finite) == {("kl_optimal", 1)}, not_finite
    # A one-step run [sigma_min, 0] is the last step of every karras/exponential/kl_optimal schedule: where the run's
    # sigmas are the same in another schedule, that placement must make A&E do the same at every step of the run.
    # ddim_uniform at 1 step is [sigma_1, 0], which is also the last step of its 2-step schedule: such a run is taken
    # as the whole 1-step schedule (the sigmas cannot tell them apart).
    whole_1_step = ("ddim_uniform", 2, 1, [1, 0])
    wrong = [c for c in cases if c["finite"] and (c["scheduler"], c["steps"], c["start_at"], c["placed"])
             != whole_1_step and (c["placed"] is None or _effect(c["placed"], c) != _effect(c["expected"], c))]
    assert not wrong, wrong[:10]
    same = sum(c["placed"] == c["expected"] for c in cases if c["finite"])
    assert same >= len(cases) - 20, same
    longer = {(c["steps"], c["expected"][0]) for c in cases
              if c["scheduler"] == "ddim_uniform" and c["sampler"] == "euler" and c["denoise"] == 1.0}
    assert {(6, 7), (7, 8), (30, 31), (20, 20), (50, 50)} <= longer  # the counts seen in the issue


def _effect(placed: list[int], case: dict[str, Any]) -> list[tuple[float, float | None] | None] | None:
    """What A&E does at each step of the run (default parameters) when the run is at `placed` = [total, start]."""
    schedule = Schedule.from_params(AEParams(), placed[0])
    run_steps = placed[0] - placed[1]
    plans = [schedule.plan(placed[1] + k) for k in range(run_steps)]
    if run_steps != case["expected"][0] - case["expected"][1]:
        return None
    return [None if p is None else (p.step_size, p.threshold) for p in plans]


@pytest.mark.parametrize("tag", ["denoise", "advanced", "custom"])
def test_partial_runs_apply_the_part_of_the_window_they_overlap(sweep: dict[str, dict[str, Any]], tag: str) -> None:
    record = sweep[tag]
    assert record["ae"]["placement"]["total"] == 8 and record["ae"]["placement"]["start"] == 2, record["ae"]
    _check_once_per_step(record, [0, 1], start=2)  # full-schedule steps 2 and 3 of the window 0-3


def test_sampler_custom_advanced_and_batch(sweep: dict[str, dict[str, Any]]) -> None:
    _check_once_per_step(sweep["custom advanced"], WINDOW)
    batch = sweep["batch"]
    _check_once_per_step(batch, WINDOW)
    assert sorted(batch["ae"]["scores"]) == ["0", "1"]
