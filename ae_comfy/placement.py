"""Where a sampling run sits in a full noise schedule, from its sigmas alone.

A&E's window is a fraction of the full schedule (ae_lib.schedule): KSampler with denoise < 1 samples the last
`steps` sigmas of a schedule of int(steps / denoise) steps, KSamplerAdvanced a slice [start_at_step:end_at_step],
SamplerCustom whatever sigmas its scheduler node gives. The run only sees its sigmas, so they are matched against
the full schedules the host can make (its schedulers, each length); the first schedule holding them as a
contiguous slice gives (total steps, start). Host-free: the glue gives `schedules(name, asked)`, the full
schedules one scheduler makes when asked for `asked` steps.

A scheduler need not return the steps it was asked for: ComfyUI's ddim_uniform strides the model's 1000
sigmas by 1000 // asked and gives asked + 1 steps for some counts (6 -> 7, 7 -> 8, 30 -> 31; 400 -> 500). So the
search is over asked counts, and a schedule's length is read from its sigmas, never assumed to be the count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

RTOL = 1e-5
MAX_SCHEDULE = 1000  # the longest asked count a partial run is matched against
Named = tuple[str, Sequence[float]]  # (which schedule, its sigmas incl. the final one)
Schedules = Callable[[str, int], list[Named]]  # (scheduler, asked steps) -> the full schedules it makes


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


def _tail_start(full: Sequence[float], steps: int) -> float:
    """The first sigma of the schedule's last `steps` steps; +inf where the schedule is shorter."""
    return float(full[len(full) - 1 - steps]) if len(full) > steps else math.inf


def _asked_for_tail(schedules: Schedules, name: str, variant: int, run: Sequence[float]) -> int:
    """The largest asked count whose tail of the run's length starts at or above the run's first sigma.

    The tail's first sigma falls as the asked count grows (a denser schedule), also where the length is not the
    count, so the count is found by bisection from 1 (a schedule too short to hold the run counts as above).
    """
    steps = len(run) - 1
    lo, hi = 0, min(MAX_SCHEDULE, 20 * max(steps, 1))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = schedules(name, mid)
        if not found or _tail_start(found[variant][1], steps) < run[0]:
            hi = mid
        else:
            lo = mid
    return lo


def candidates(schedules: Schedules, names: Sequence[str], run: Sequence[float]) -> Iterator[Named]:
    """Full schedules that may hold the run, the likeliest first.

    First each scheduler asked for the run's own step count (a whole run). A run ending at sigma 0 is a
    schedule's tail (KSampler denoise < 1, KSamplerAdvanced start_at_step): each scheduler's asked count is
    found by bisection. Other runs (end_at_step) are looked for in schedules of up to 4x their length, from
    half their length up (a scheduler may give up to about twice the steps asked).
    """
    steps = len(run) - 1
    for name in names:
        yield from schedules(name, steps)
    if run[-1] == 0.0:
        for name in names:
            for variant in (0, 1):
                asked = _asked_for_tail(schedules, name, variant, run)
                for total in range(max(1, asked - 2), asked + 3):
                    found = schedules(name, total)
                    if found:
                        yield found[variant]
        return
    for total in range(max(1, steps // 2 - 1), min(MAX_SCHEDULE, 4 * steps + 4) + 1):
        for name in names:
            yield from schedules(name, total)
