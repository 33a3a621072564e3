"""TEST-ONLY ComfyUI nodes that watch what A&E does inside a real sampler (tests/comfy/test_samplers.py).

"AE test probe" (MODEL, tag -> MODEL) clones the model and puts its own wrappers OUTSIDE every other one:
- SAMPLER_SAMPLE: one record per sampling run (tag, sampler function, sigmas); it also wraps the sampler's
  step callback, which reports the sampler's own x of each step;
- PREDICT_NOISE: every model call: its sigma, and how far the x the sampler passed moved while the inner
  wrappers (A&E's) ran, plus a copy of that x afterwards.
Each callback then records which calls' x (after A&E) equal the x the sampler reports for that step: the proof
that A&E's update is in the sampler's own latent. A&E's own report (altered schedule indices, placement) is
copied from its patch at the end of the run. GET /ae-test/probe returns the records and clears them.

"AE test sink" (LATENT) is an output node that does nothing, so a branch runs without decoding.
"AE test attn2 replace" puts a pass-through attn2 replacement on a MODEL (a refusal case).
"""

from __future__ import annotations

from typing import Any

import torch

RECORDS: list[dict[str, Any]] = []


def _front(patcher: Any, kind: str, fn: Any) -> None:
    patcher.wrappers[kind] = {"ae_test_probe": [fn], **patcher.wrappers.get(kind, {})}


def _ae_report(patcher: Any) -> dict[str, Any] | None:
    from comfy.patcher_extension import WrappersMP

    for wrapper in patcher.wrappers.get(WrappersMP.PREDICT_NOISE, {}).get("attend_and_excite", []):
        report = getattr(getattr(wrapper, "__self__", None), "report", None)
        if report is not None:
            p = report.placement
            return {
                "sampler": report.sampler, "altered": list(report.altered), "calls": report.calls,
                "warnings": list(report.warnings),
                "placement": None if p is None else {"total": p.total, "start": p.start, "source": p.source},
                "scores": {str(b): list(i.scores) for b, i in report.images.items()},
                "refined": dict(getattr(report, "refined", {})),
            }
    return None


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
            return executor(guider, sigmas, extra_args, watch, *args, **kwargs)
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


def _routes() -> None:
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    @PromptServer.instance.routes.get("/ae-test/probe")
    async def probe(request: Any) -> Any:
        out = list(RECORDS)
        RECORDS.clear()
        return web.json_response(out)


_routes()
NODE_CLASS_MAPPINGS = {"AETestProbe": AETestProbe, "AETestSink": AETestSink, "AETestAttn2Replace": AETestAttn2Replace}
