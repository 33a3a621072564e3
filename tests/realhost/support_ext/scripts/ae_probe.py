"""TEST-ONLY probe of what A&E does inside a real host's sampler (used by tests/realhost/test_samplers.py).

It changes nothing unless a test turns it on: `POST /ae-test/probe {"on": true, "mode": ..., "input_only": [...]}`
clears the records and arms it, `GET /ae-test/probe` returns them, `{"on": false}` disarms it and undoes every
patch. While it is on, for each sampling run it records every call of the sampler's CFG denoiser
(`p.sampler.model_wrap_cfg`):
- the call's index (its own count and the denoiser's `step` counter), the `x` the sampler passed (before any
  pre-hook: a prepended forward pre-hook), and whether that `x` is the object a previous step callback reported;
- whether A&E's engine ran on that call and for which schedule index (AttendExcite.step, wrapped),
- how far A&E's pre-hook moved the sampler's own tensor and the tensor that goes on to the model
  (Session._pre_hook, wrapped);
- the sampler's step callbacks (`callback_state`: step i, and which call's output is its `denoised`).

mode "input_only" with `input_only: [indices]` is the counterfactual: at those schedule indices the probe
undoes A&E's in-place write on the sampler's tensor and hands the moved latent to the model as a copy, so
the update reaches only that call's model input (what a sampler that discards its `x` would do).
"""

from __future__ import annotations

import sys
from typing import Any

from modules import script_callbacks, scripts

STATE: dict[str, Any] = {"on": False, "mode": "normal", "input_only": [], "runs": []}
_PATCHES: list[tuple[Any, str, Any]] = []  # (owner, attribute, original)
_HANDLES: list[Any] = []
_CURRENT: dict[str, Any] = {"run": None, "engine": None}


def _flat(t: Any) -> list[float]:
    return [float(v) for v in t.detach().double().flatten().tolist()]


def _norm(t: Any) -> float:
    return float(t.detach().double().norm())


# --- patches on the extension (only while on) -------------------------------------------------------------


def _patch(owner: Any, name: str, make: Any) -> None:
    original = getattr(owner, name)
    _PATCHES.append((owner, name, original))
    setattr(owner, name, make(original))


def _unpatch() -> None:
    while _PATCHES:
        owner, name, original = _PATCHES.pop()
        setattr(owner, name, original)


def _wrap_engine_step(original: Any) -> Any:
    def step(self: Any, index: int, *args: Any, **kwargs: Any) -> Any:
        result = original(self, index, *args, **kwargs)
        _CURRENT["engine"] = (int(index), result is not None)
        return result

    return step


def _wrap_pre_hook(original: Any) -> Any:
    def pre_hook(self: Any, module: Any, args: tuple, kwargs: dict) -> Any:
        run = _CURRENT["run"]
        x = args[0] if args else None
        if run is None or not run["calls"] or x is None:
            return original(self, module, args, kwargs)
        call = run["calls"][-1]
        before = x.clone()
        _CURRENT["engine"] = None
        out = original(self, module, args, kwargs)
        engine, _CURRENT["engine"] = _CURRENT["engine"], None
        if engine is None:
            return out
        index, ran = engine
        call["engine"].append({"index": index, "ran": ran})
        model_x = x
        if ran and STATE["mode"] == "input_only" and index in STATE["input_only"]:
            model_x = x.clone()  # the moved latent, for the model only
            x.copy_(before)  # the sampler's own tensor as if the update had been discarded
            call["input_only"] = True
            out = ((model_x, *args[1:]), kwargs)
        call["sampler_delta"] = _norm(x - before)
        call["input_delta"] = _norm(model_x - before)
        return out

    return pre_hook


def _arm() -> None:
    _unpatch()
    engine = sys.modules.get("ae_lib.engine")
    session = sys.modules.get("ae_webui.session")
    if engine is None or session is None:
        raise RuntimeError("the A&E extension is not loaded (no ae_lib.engine / ae_webui.session)")
    _patch(engine.AttendExcite, "step", _wrap_engine_step)
    _patch(session.Session, "_pre_hook", _wrap_pre_hook)


# --- hooks on this run's sampler (installed per run, only while on) -----------------------------------------


def _remove_hooks() -> None:
    while _HANDLES:
        _HANDLES.pop().remove()
    _CURRENT["run"] = None


def _install(p: Any) -> None:
    _remove_hooks()
    sampler = p.sampler
    denoiser = sampler.model_wrap_cfg
    config = getattr(sampler, "config", None)
    run: dict[str, Any] = {
        "sampler": config.name if config is not None else p.sampler_name,
        "sampler_class": type(sampler).__name__, "calls": [], "callbacks": [],
    }
    STATE["runs"].append(run)
    _CURRENT["run"] = run
    inputs: list[Any] = []  # the x objects of the calls (kept alive, so identity checks are sound)
    outputs: list[Any] = []
    callback_xs: list[Any] = []

    def before(module: Any, args: tuple, kwargs: dict) -> None:
        x = args[0]
        from_callback = next((i for i, cx in enumerate(callback_xs) if cx is x), None)
        inputs.append(x)
        run["calls"].append({
            "call": len(run["calls"]), "denoiser_step": int(getattr(module, "step", -1)), "x": _flat(x),
            "x_from_callback": from_callback, "engine": [], "sampler_delta": 0.0, "input_delta": 0.0,
            "input_only": False,
        })

    def after(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        outputs.append(output)

    original_callback = sampler.callback_state

    def callback_state(d: dict) -> Any:
        denoised_of = next((i for i, o in enumerate(outputs) if o is d.get("denoised")), None)
        x_of = next((i for i, x in enumerate(inputs) if x is d.get("x")), None)
        run["callbacks"].append({"i": int(d["i"]), "after_calls": len(run["calls"]), "denoised_of": denoised_of,
                                 "x_of": x_of})
        callback_xs.append(d.get("x"))
        return original_callback(d)

    sampler.callback_state = callback_state  # an instance attribute: sample() reads self.callback_state late
    _HANDLES.append(denoiser.register_forward_pre_hook(before, prepend=True, with_kwargs=True))
    _HANDLES.append(denoiser.register_forward_hook(after, with_kwargs=True))


class AeTestProbe(scripts.Script):
    def title(self) -> str:
        return "ae test probe"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        if STATE["on"]:
            _install(p)

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        _remove_hooks()


# --- the route --------------------------------------------------------------------------------------------


def _routes(demo: Any, app: Any) -> None:
    from fastapi import Body

    def get_probe() -> dict[str, Any]:
        return {k: STATE[k] for k in ("on", "mode", "input_only", "runs")}

    def set_probe(body: dict = Body(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI's idiom)
        _remove_hooks()
        STATE.update(on=bool(body.get("on")), mode=str(body.get("mode", "normal")),
                     input_only=[int(i) for i in body.get("input_only", [])], runs=[])
        if STATE["on"]:
            _arm()
        else:
            _unpatch()
        return get_probe()

    app.add_api_route("/ae-test/probe", get_probe, methods=["GET"])
    app.add_api_route("/ae-test/probe", set_probe, methods=["POST"])


script_callbacks.on_app_started(_routes)
