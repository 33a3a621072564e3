"""The objectives A&E's steps can minimise, by name. A new objective is one module here, registered below."""

from __future__ import annotations

from ae_lib.objectives.base import ImageTarget, Objective
from ae_lib.objectives.bind import Bind
from ae_lib.objectives.contrast import Contrast
from ae_lib.objectives.divide import Divide
from ae_lib.objectives.excite import Excite
from ae_lib.params import AEParams

__all__ = ["DEFAULT", "OBJECTIVES", "ImageTarget", "Objective", "make"]

OBJECTIVES: dict[str, type[Objective]] = {Excite.name: Excite, Contrast.name: Contrast}
OBJECTIVES[Bind.name] = Bind
OBJECTIVES[Divide.name] = Divide
DEFAULT = Excite.name


def make(name: str | None, params: AEParams) -> Objective:
    """A fresh objective (its own state) for one sampling run."""
    key = name or DEFAULT
    if key not in OBJECTIVES:
        msg = f"unknown objective '{key}' (known: {', '.join(OBJECTIVES)})"
        raise ValueError(msg)
    return OBJECTIVES[key](params)
