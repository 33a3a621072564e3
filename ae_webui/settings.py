"""The extension's WebUI settings (Settings tab, section "Attend and Excite")."""

from __future__ import annotations

from modules import shared

SECTION = ("attend_and_excite", "Attend and Excite")
CHECKPOINTING = "attend_excite_checkpointing"


def register() -> None:
    """on_ui_settings."""
    shared.opts.add_option(
        CHECKPOINTING,
        shared.OptionInfo(False, "Gradient checkpointing in the A&E pass (less VRAM, slower altered steps)",
                          section=SECTION),
    )


def checkpointing() -> bool:
    return bool(getattr(shared.opts, CHECKPOINTING, False))
