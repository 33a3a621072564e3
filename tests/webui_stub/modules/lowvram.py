"""Stand-in for modules/lowvram.py (v1.10.1)."""

from __future__ import annotations


def is_enabled(sd_model) -> bool:
    """modules/lowvram.py:is_enabled -- sd_model.lowvram, set for --lowvram AND --medvram by setup_for_low_vram."""
    return bool(getattr(sd_model, "lowvram", False))


def send_everything_to_cpu() -> None:
    """modules/lowvram.py:send_everything_to_cpu -- nothing to move on the CPU stand-in."""
