"""Every sampler a real host lists: A&E runs once per step on the step's main call and the update persists, or
A&E refuses the sampler and says so in the infotext.

The probe (tests/realhost/support_ext/scripts/ae_probe.py) records each call of the sampler's CFG denoiser, the
engine's runs and the sampler's step callbacks. What the host itself tells us, independent of our rules in
ae_webui/sampler_steps.py:
- a step's main call: for k-diffusion samplers the call whose output object is the `denoised` of step i's
  callback (every sampler loop does `denoised = model(x, ...)` then `callback({... 'denoised': denoised})`);
  for the timestep samplers (DDIM, PLMS: `denoised` is pred_x0) the call whose `x` object is the `x` that
  step i-1's callback reported (the loop's new latent), and the run's first call for step 0;
- persistence, by a counterfactual: a second run where the probe undoes A&E's in-place write at step 0 and
  hands the moved latent to that call's model input only. Up to step 0 both runs are the same; the `x` the
  sampler passes at step 1's main call differs between them only if the sampler's own arithmetic used the
  moved tensor. The difference is compared with the size of the update (the noise of two CPU backward
  passes is ~1e-6 of it); on the update's own call the sampler's tensor must carry all of it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.realhost.conftest import ae, generate
from tests.realhost.targets import SD1, Live, select

pytestmark = pytest.mark.realhost
PROMPT = "a cat and a frog"
STEPS = 6
WINDOW = math.floor(0.5 * STEPS + 0.5)  # steps i < round(0.5 x N) are altered (the default fraction)
# Refinement off: the once-per-step and persistence claims are about where the update goes, not how big it is.
AE_ARGS = ae(subjects="cat, frog", max_refine=0)
PERSISTS = 0.02  # step 1's x moves by at least 2 % of the step-0 update when the sampler kept the update
DISCARDED = 1e-3  # and by no more than this (thread noise) when the sampler never reads x after the call
# Samplers whose next latent reads x only through the model call, so that the in-place update and an update of
# the model input only are the same thing (nothing to persist): modules/sd_samplers_lcm.py:sample_lcm does
# `denoised = model(x, ...)`, `x = denoised`, `x += sigmas[i + 1] * noise` (A1111 v1.10.1 and Forge); Forge
# Classic's "LCM Karras" is ldm_patched's sample_lcm, the same loop (modules_forge/forge_alter_samplers.py).
MODEL_ONLY = {"LCM", "LCM Karras"}


@dataclass
class Outcome:
    sampler: str
    verdict: str = "?"  # "applied", "refused" or "FAIL"
    calls_per_step: list[int] = field(default_factory=list)
    mains: list[int] = field(default_factory=list)
    engine: dict[int, int] = field(default_factory=dict)  # call -> schedule index
    ratio: float | None = None  # |x1(normal) - x1(input only)| / |update at step 0|
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> str:
        ratio = "-" if self.ratio is None else f"{self.ratio:.3g}"
        engine = ",".join(f"{c}:{i}" for c, i in sorted(self.engine.items())) or "-"
        per_step = "/".join(map(str, self.calls_per_step)) or "-"
        return (f"{self.sampler:<18} {self.verdict:<8} {per_step:<14} {engine:<14} {ratio:<9} {self.seconds:5.1f}s  "
                + "; ".join(self.problems))


@pytest.fixture(scope="module", params=SD1)
def sd1(request: pytest.FixtureRequest) -> Any:
    live = select(request, request.param)
    yield live
    live.webui.post("/ae-test/probe", {"on": False})


def probe_run(live: Live, sampler: str, **probe: Any) -> tuple[Any, dict[str, Any]]:
    live.webui.post("/ae-test/probe", {"on": True, **probe})
    gen = generate(live.webui, {"prompt": PROMPT, "sampler_name": sampler, "steps": STEPS,
                                "alwayson_scripts": AE_ARGS})
    records = live.webui.get("/ae-test/probe")
    live.webui.post("/ae-test/probe", {"on": False})
    runs = records["runs"]
    assert len(runs) == 1, f"{sampler}: expected one sampling run, the probe saw {len(runs)}"
    return gen, runs[0]


def main_calls(run: dict[str, Any]) -> list[int | None]:
    """The host's own answer to "which call saw step i's latent", from the step callbacks (module docstring)."""
    mains: list[int | None] = []
    for pos, cb in enumerate(run["callbacks"]):
        if cb["denoised_of"] is not None:
            mains.append(cb["denoised_of"])
        elif pos == 0:
            mains.append(0 if run["calls"] else None)
        else:
            mains.append(next((c["call"] for c in run["calls"] if c["x_from_callback"] == pos - 1), None))
    return mains


def engine_calls(run: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    return {c["call"]: c["engine"] for c in run["calls"] if c["engine"]}


def norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def distance(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b, strict=True)))


def check_structure(out: Outcome, run: dict[str, Any]) -> None:
    """Once per step inside the window, on the step's main call, for the right schedule index."""
    steps = [cb["i"] for cb in run["callbacks"]]
    if steps != list(range(STEPS)):
        out.problems.append(f"step callbacks {steps}, expected 0..{STEPS - 1}")
        return
    mains = main_calls(run)
    if None in mains or mains != sorted(set(mains)):
        out.problems.append(f"cannot tell the steps' main calls from the callbacks: {mains}")
        return
    out.mains = [m for m in mains if m is not None]
    n_calls = len(run["calls"])
    out.calls_per_step = [b - a for a, b in zip(out.mains, [*out.mains[1:], n_calls], strict=True)]
    counters = [c["denoiser_step"] for c in run["calls"]]
    if counters != list(range(n_calls)):
        out.problems.append(f"the denoiser's step counter is not the call index: {counters}")
    ran = engine_calls(run)
    out.engine = {c: e[0]["index"] for c, e in ran.items()}
    expected = {out.mains[i]: i for i in range(WINDOW)}
    if any(len(e) != 1 for e in ran.values()):
        out.problems.append(f"the engine ran more than once on one call: {ran}")
    if out.engine != expected:
        out.problems.append(f"engine ran on calls {out.engine} (call: index), expected {expected} (main calls)")
    if not all(e[0]["ran"] for e in ran.values()):
        out.problems.append(f"the engine returned no update on some calls: {ran}")
    for c in expected:
        call = run["calls"][c]
        if not call["sampler_delta"] > 0 or not math.isclose(call["sampler_delta"], call["input_delta"], rel_tol=1e-6):
            out.problems.append(f"call {c}: the sampler's own x moved {call['sampler_delta']:.3g}, the model's "
                                f"input {call['input_delta']:.3g}: the update must be written into the sampler's x")


def check_persistence(out: Outcome, run: dict[str, Any], cf: dict[str, Any]) -> None:
    """The sampler's x at step 1 with the update kept vs with the update given to the model input only."""
    m0, m1 = out.mains[0], out.mains[1]
    if len(cf["calls"]) != len(run["calls"]) or main_calls(cf) != out.mains:
        out.problems.append("the counterfactual run took other calls")
        return
    a0, b0 = run["calls"][m0], cf["calls"][m0]
    if not b0["input_only"] or b0["sampler_delta"] != 0 or not b0["input_delta"] > 0:
        out.problems.append(f"the counterfactual did not take effect at call {m0}: {b0['input_only']}, "
                            f"{b0['sampler_delta']}, {b0['input_delta']}")
        return
    if distance(a0["x"], b0["x"]) > 1e-6 * norm(a0["x"]):
        out.problems.append("the two runs differ before the first update (the host is not deterministic here)")
        return
    out.ratio = distance(run["calls"][m1]["x"], cf["calls"][m1]["x"]) / a0["sampler_delta"]
    if out.sampler in MODEL_ONLY:
        if out.ratio > DISCARDED:
            out.problems.append(f"{out.sampler} was expected to read x only through the model (ratio {out.ratio:.3g})")
    elif out.ratio < PERSISTS:
        out.problems.append(f"the update is discarded: step 1's x differs by only {out.ratio:.3g} of the update "
                            "from a run where it reached the model input only")


def check_sampler(live: Live, name: str) -> Outcome:
    out = Outcome(name)
    t0 = time.monotonic()
    gen, run = probe_run(live, name)
    error = gen.infotext_value("AE error")
    if error is not None:
        ran = engine_calls(run)
        out.calls_per_step = [len(run["calls"])]
        if f"sampler '{name}' is not supported" not in error:
            out.problems.append(f"AE error without the sampler refusal: {error}")
        elif ran:
            out.problems.append(f"refused, yet the engine ran: {ran}")
        else:
            out.verdict = "refused"
            out.problems.append(error.split(": ", 2)[-1].split(". Use")[0])
    else:
        if gen.infotext_value("AE scores") is None:
            out.problems.append(f"no AE scores and no AE error: {gen.infotexts[0]}")
        check_structure(out, run)
        if not out.problems:
            _, cf = probe_run(live, name, mode="input_only", input_only=[0])
            check_persistence(out, run, cf)
        if not out.problems:
            out.verdict = "applied"
    if out.verdict == "?":
        out.verdict = "FAIL"
    out.seconds = time.monotonic() - t0
    return out


def test_every_listed_sampler_runs_once_per_step_and_persists_or_is_refused(
    sd1: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    samplers = [s["name"] for s in sd1.webui.get("/sdapi/v1/samplers")]
    assert "Euler" in samplers and "DDIM" in samplers, samplers
    outcomes = [check_sampler(sd1, name) for name in samplers]
    head = f"{'sampler':<18} {'verdict':<8} {'calls/step':<14} {'engine c:i':<14} {'persist':<9} {'time':>6}  note"
    table = "\n".join([f"{sd1.target.id}: {STEPS} steps, window i < {WINDOW}, {time.monotonic() - t0:.0f} s",
                       head, *(o.row() for o in outcomes)])
    with capsys.disabled():
        print("\n" + table)
    failed = [o.sampler for o in outcomes if o.verdict == "FAIL"]
    assert not failed, f"neither applied once per step with a persisting update nor refused: {failed}\n{table}"
    applied = [o.sampler for o in outcomes if o.verdict == "applied"]
    assert "Euler" in applied and "DDIM" in applied, table
