"""Which model call of a sampler is a step's main call: the one that sees the step's own latent.

A&E moves the latent once per sampler step, on the call whose input is the latent the sampler keeps using
afterwards (webui-host-a1111.md §2.6). Hosts count model calls per sampling run; each sampler follows one of
these rules from call index to step index. Host glues map their own sampler names to a rule (or refuse).
"""

from __future__ import annotations

from enum import Enum


class CallRule(Enum):
    SINGLE = "one model call per step"
    # Two calls per step (the second at a temporary x_2), one on the last step: Heun, DPM2, DPM++ 2S a, DPM++ SDE.
    PAIRED = "two model calls per step"
    # Three calls per step, two on the next-to-last, one on the last: Forge's sample_heunpp2.
    TRIPLE = "three model calls per step"
    # Two calls on the first step (x and x_prev), then one: PLMS.
    PLMS = "two calls on the first step, then one"
    # Three calls (x, -x, a midpoint) on steps i <= n/2, then one: Neo's sample_Kohaku_LoNyu_Yog.
    EARLY_TRIPLE = "three model calls per step in the first half, then one"
    # Three calls per step (x, then two temporaries), one on the last step: ComfyUI's sample_seeds_3.
    THREE_STAGE = "three model calls per step, one on the last"


def step_of_call(rule: CallRule, call: int, run_steps: int = 0) -> int | None:
    """The sampler step whose main call is model call `call` (0-based), or None for the other calls.

    `run_steps`: the steps of this sampling run (needed where the calls per step change near the end).
    """
    if rule is CallRule.PAIRED:
        return call // 2 if call % 2 == 0 else None
    if rule is CallRule.THREE_STAGE:
        return call // 3 if call % 3 == 0 else None
    if rule in (CallRule.TRIPLE, CallRule.EARLY_TRIPLE):
        return _first_call_step(call, calls_per_step(rule, run_steps))
    if rule is CallRule.PLMS:
        if call == 1:
            return None
        return 0 if call == 0 else call - 1
    return call


def calls_per_step(rule: CallRule, run_steps: int) -> list[int]:
    """Model calls of each step of a run of `run_steps` steps (rules whose count varies by step)."""
    if rule is CallRule.TRIPLE:
        return [3] * max(run_steps - 2, 0) + [2, 1][-min(run_steps, 2):] if run_steps > 0 else [3]
    if rule is CallRule.EARLY_TRIPLE:
        return [3 if i <= run_steps / 2 else 1 for i in range(run_steps)]
    msg = f"{rule.name} has a fixed pattern"
    raise ValueError(msg)


def _first_call_step(call: int, calls: list[int]) -> int | None:
    first = 0
    for step, n in enumerate(calls):
        if call < first + n:
            return step if call == first else None
        first += n
    return None
