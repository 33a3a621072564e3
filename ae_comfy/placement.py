"""Where a sampling run sits in a full noise schedule, from its sigmas alone.

A&E's window is a fraction of the full schedule (ae_lib.schedule): KSampler with denoise < 1 samples the last
`steps` sigmas of a schedule of int(steps / denoise) steps, KSamplerAdvanced a slice [start_at_step:end_at_step],
SamplerCustom whatever sigmas its scheduler node gives. The run only sees its sigmas, so they are matched against
the full schedules the host can make (its schedulers, each length); the first schedule holding them as a
contiguous slice gives (total steps, start). Host-free: the candidates come from the glue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

RTOL = 1e-5


@dataclass(frozen=True)
class Placement:
    total: int  # steps of the full schedule
    start: int  # the run's first step in it
    source: str  # which schedule matched (for the console)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-7)


def find_slice(run: Sequence[float], full: Sequence[float]) -> int | None:
    """The index at which `run` appears in `full` as a contiguous slice, or None."""
    n = len(run)
    if n == 0 or n > len(full):
        return None
    for s in range(len(full) - n + 1):
        if _close(full[s], run[0]) and all(_close(full[s + j], run[j]) for j in range(1, n)):
            return s
    return None


def locate(run: Sequence[float], candidates: Iterable[tuple[str, Sequence[float]]]) -> Placement | None:
    """The first candidate full schedule (name, sigmas incl. the final one) that holds the run's sigmas."""
    for name, full in candidates:
        start = find_slice(run, full)
        if start is not None:
            return Placement(len(full) - 1, start, name)
    return None


def whole_run(run: Sequence[float], sigma_max: float) -> Placement | None:
    """A run that starts at the model's largest sigma is a whole schedule of its own (custom sigmas)."""
    if len(run) >= 2 and run[0] >= sigma_max * (1 - 1e-4):
        return Placement(len(run) - 1, 0, "its own sigmas (starts at sigma_max)")
    return None
