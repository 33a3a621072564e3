"""TEST-ONLY ComfyUI nodes that watch what A&E does inside a real sampler (tests/comfy/test_samplers.py).

"AE test probe" (MODEL, tag -> MODEL) clones the model and puts its own wrappers OUTSIDE every other one:
- SAMPLER_SAMPLE: one record per sampling run (tag, sampler function, sigmas); it also wraps the sampler's
  step callback, which reports the sampler's own x of each step;
- PREDICT_NOISE: every model call: its sigma, and how far the x the sampler passed moved while the inner
  wrappers (A&E's) ran, plus a copy of that x afterwards, and the objective A&E's engine runs ("objective").
Each callback then records which calls' x (after A&E) equal the x the sampler reports for that step: the proof
that A&E's update is in the sampler's own latent. A&E's own report (altered schedule indices, placement) is
copied from its patch at the end of the run, with an even sample of the sampler's output latent ("output").
GET /ae-test/probe returns the records and clears them.

"AE test sink" (LATENT) is an output node that does nothing, so a branch runs without decoding.
"AE test attn2 replace" puts a pass-through attn2 replacement on a MODEL (a refusal case).
"AE test placement" (MODEL) builds ComfyUI's own comfy.samplers.KSampler for every scheduler x step count x
denoise (and KSamplerAdvanced's start_at_step) and asks A&E's placement where each run's sigmas sit;
GET /ae-test/placement returns the cases.
Every text the page would show under a node (PromptServer.send_progress_text) is kept too:
GET /ae-test/progress returns [(node id, text), ...] and clears them.
"""

from __future__ import annotations

from typing import Any

import torch

RECORDS: list[dict[str, Any]] = []
PLACEMENTS: list[dict[str, Any]] = []
PROGRESS: list[tuple[str, str]] = []
OUTPUT_SAMPLES = 512  # values of the output latent kept per run (A&E's backward on CPU is not bit-reproducible)


def _front(patcher: Any, kind: str, fn: Any) -> None:
    patcher.wrappers[kind] = {"ae_test_probe": [fn], **patcher.wrappers.get(kind, {})}


def _ae_patch(patcher: Any) -> Any:
    from comfy.patcher_extension import WrappersMP

    for wrapper in patcher.wrappers.get(WrappersMP.PREDICT_NOISE, {}).get("attend_and_excite", []):
        owner = getattr(wrapper, "__self__", None)
        if getattr(owner, "report", None) is not None:
            return owner
    return None


def _objective(patcher: Any) -> str | None:
    """The objective the engine of A&E's running step driver minimises (None: no run in progress)."""
    run = getattr(_ae_patch(patcher), "_run", None)
    driver = getattr(run, "driver", None)
    return None if driver is None else driver.engine.objective.name


def _ae_report(patcher: Any) -> dict[str, Any] | None:
    patch = _ae_patch(patcher)
    if patch is None:
        return None
    report = patch.report
    p = report.placement
    return {
        "sampler": report.sampler, "altered": list(report.altered), "calls": report.calls,
        "warnings": list(report.warnings),
        "placement": None if p is None else {"total": p.total, "start": p.start, "source": p.source},
        "scores": {str(b): list(i.scores) for b, i in report.images.items()},
        "refined": dict(getattr(report, "refined", {})),
    }


class Probe:
    def __init__(self, tag: str, patcher: Any) -> None:
        self.tag, self.patcher = tag, patcher
        self.run: dict[str, Any] | None = None
        self.after: list[torch.Tensor] = []

    def sampler_sample(self, executor: Any, guider: Any, sigmas: Any, extra_args: dict, callback: Any, *args: Any,
                       **kwargs: Any) -> Any:
        function = getattr(executor.class_obj, "sampler_function", None)
        self.run = {"tag": self.tag, "function": getattr(function, "__name__", "?"),
                    "sigmas": [float(s) for s in sigmas], "calls": [], "callbacks": []}
        self.after = []

        def watch(step: int, x0: Any, x: torch.Tensor, total: int) -> Any:
            same = [i for i, a in enumerate(self.after) if a.shape == x.shape and torch.equal(a, x)]
            self.run["callbacks"].append({"step": int(step), "calls_so_far": len(self.after), "equal_calls": same})
            if callback is not None:
                return callback(step, x0, x, total)
            return None

        try:
            out = executor(guider, sigmas, extra_args, watch, *args, **kwargs)
            flat = out.detach().double().flatten().cpu()
            self.run["output"] = flat[:: max(1, flat.numel() // OUTPUT_SAMPLES)].tolist()
            return out
        finally:
            self.run["ae"] = _ae_report(self.patcher)
            RECORDS.append(self.run)
            self.run, self.after = None, []

    def predict_noise(self, executor: Any, x: torch.Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        if self.run is None:
            return executor(x, timestep, *args, **kwargs)
        before = x.clone()
        out = executor(x, timestep, *args, **kwargs)  # A&E (inside) moves x in place first
        self.after.append(x.clone())
        self.run["objective"] = self.run.get("objective") or _objective(self.patcher)
        self.run["calls"].append({"sigma": float(timestep.flatten()[0]),
                                  "moved": float((x.double() - before.double()).norm())})
        return out


class AETestProbe:
    CATEGORY = "testing"
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL",), "tag": ("STRING", {"default": ""})}}

    def apply(self, model: Any, tag: str) -> tuple[Any]:
        from comfy.patcher_extension import WrappersMP

        m = model.clone()
        probe = Probe(tag, m)
        _front(m, WrappersMP.SAMPLER_SAMPLE, probe.sampler_sample)
        _front(m, WrappersMP.PREDICT_NOISE, probe.predict_noise)
        return (m,)


class AETestSink:
    CATEGORY = "testing"
    FUNCTION = "sink"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"samples": ("LATENT",)}}

    def sink(self, samples: Any) -> dict[str, Any]:
        return {}


class AETestAttn2Replace:
    CATEGORY = "testing"
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL",)}}

    def apply(self, model: Any) -> tuple[Any]:
        from comfy.ldm.modules.attention import optimized_attention

        def attn2(q: Any, k: Any, v: Any, extra_options: dict) -> Any:
            return optimized_attention(q, k, v, extra_options["n_heads"])

        m = model.clone()
        m.set_model_attn2_replace(attn2, "input", 4)
        return (m,)


class AETestPlacement:
    CATEGORY = "testing"
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL",), "steps": ("STRING", {"default": "1-12,20,25,30,50"}),
                             "denoise": ("STRING", {"default": "1.0,0.6"}),
                             "samplers": ("STRING", {"default": "euler,dpm_2"}),
                             "start_at": ("BOOLEAN", {"default": False})}}

    def run(self, model: Any, steps: str, denoise: str, samplers: str, start_at: bool) -> dict[str, Any]:
        from comfy.samplers import SCHEDULER_NAMES, KSampler

        from ae_comfy.patch import place

        counts = [n for part in steps.split(",") for n in _span(part)]
        ms = model.get_model_object("model_sampling")

        def sigmas(asked: int, sampler: str, scheduler: str, d: float = 1.0) -> list[float]:
            return [float(s) for s in KSampler(model, asked, "cpu", sampler, scheduler, d).sigmas]

        for scheduler in SCHEDULER_NAMES:
            for sampler in samplers.split(","):
                for n in counts:
                    for d in (float(x) for x in denoise.split(",")):
                        asked = n if d > 0.9999 else int(n / d)  # KSampler.set_steps
                        full = sigmas(asked, sampler, scheduler)
                        run = sigmas(n, sampler, scheduler, d)
                        PLACEMENTS.append(_placed(ms, place, scheduler, sampler, n, d, None, full, run))
                    if start_at and n >= 2:  # KSamplerAdvanced at start_at_step n // 2: sigmas[start_step:]
                        full = sigmas(n, sampler, scheduler)
                        PLACEMENTS.append(_placed(ms, place, scheduler, sampler, n, 1.0, n // 2, full,
                                                  full[n // 2:]))
        return {}


def _span(part: str) -> list[int]:
    lo, _, hi = part.strip().partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def _placed(ms: Any, place: Any, scheduler: str, sampler: str, steps: int, denoise: float, start_at: int | None,
            full: list[float], run: list[float]) -> dict[str, Any]:
    import math

    finite = all(math.isfinite(s) for s in run)
    p = place(ms, run) if finite else None
    return {"scheduler": scheduler, "sampler": sampler, "steps": steps, "denoise": denoise, "start_at": start_at,
            "finite": finite, "expected": [len(full) - 1, len(full) - len(run)],
            "placed": None if p is None else [p.total, p.start], "source": None if p is None else p.source}


def _keep_progress_texts() -> None:
    """Wrap the server's send_progress_text: what the page shows under a node, as sent."""
    try:
        from server import PromptServer
    except ImportError:
        return
    instance = PromptServer.instance
    original = instance.send_progress_text

    def send_progress_text(text: Any, node_id: str, sid: Any = None) -> Any:
        PROGRESS.append((str(node_id), text if isinstance(text, str) else repr(text)))
        return original(text, node_id, sid)

    instance.send_progress_text = send_progress_text


def _routes() -> None:
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    def taker(records: list) -> Any:
        async def take(request: Any) -> Any:
            out = list(records)
            records.clear()
            return web.json_response(out)

        return take

    PromptServer.instance.routes.get("/ae-test/probe")(taker(RECORDS))
    PromptServer.instance.routes.get("/ae-test/placement")(taker(PLACEMENTS))
    PromptServer.instance.routes.get("/ae-test/progress")(taker(PROGRESS))


_routes()
_keep_progress_texts()
NODE_CLASS_MAPPINGS = {"AETestProbe": AETestProbe, "AETestSink": AETestSink, "AETestAttn2Replace": AETestAttn2Replace,
                       "AETestPlacement": AETestPlacement}
