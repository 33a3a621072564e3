"""Our boundary with the host: no exception from our code reaches the WebUI.

Hosts differ in how they call an extension: A1111 and Forge wrap most script hooks, SD.Next's API calls every
script's `ui()` bare for each txt2img/img2img request (modules/api/script.py: init_default_script_args), so one
exception there answers HTTP 500 to every request. Every entry point the extension registers goes through
`guarded`: the error is logged, A&E stands down for the generation (its hook removed, no state left on `p`, the
reason in the image's info where it is still to be written), and the host carries on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ae_webui.state import LOG, set_state

T = TypeVar("T")
Wrapper = Callable[[Callable[..., T]], Callable[..., T]]
STOOD_DOWN = "A&E stood down"


def stand_down(p: Any, where: str, error: BaseException) -> None:
    """After an error in a generation hook: remove what A&E installed and say why in the info."""
    try:
        from ae_webui import lifecycle  # imports host modules; only reached inside a generation

        lifecycle.end(p)
    except Exception:
        LOG.exception("could not remove A&E's hook after an error")
    set_state(p, None)
    params = getattr(p, "extra_generation_params", None)
    if isinstance(params, dict):
        for key in ("AE scores", "AE error"):
            if callable(params.get(key)):
                params.pop(key)  # our per-image callables belong to the state we dropped
        params["AE error"] = f"{STOOD_DOWN}: {where} raised {type(error).__name__}: {error}"


def guarded(where: str, default: Any = None, generation: bool = False) -> Wrapper:
    """Wrap an entry point: exceptions are logged and `default` returned. `generation`: the wrapped function is a
    script hook whose first argument after `self` is the processing object `p` (A&E stands down for it)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as error:  # our boundary: the host must never see it
                LOG.exception("%s failed; A&E stands down", where)
                if generation and len(args) >= 2:
                    try:
                        stand_down(args[1], where, error)
                    except Exception:
                        LOG.exception("could not stand down cleanly")
                return default

        return inner

    return wrap
