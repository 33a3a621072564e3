"""Stand-in for modules/api/models.py (v1.10.1): ScriptArg / ScriptInfo (pydantic models there, dataclasses here)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class ScriptArg:
    """modules/api/models.py:ScriptArg"""

    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list[str] | None = None


@dataclasses.dataclass
class ScriptInfo:
    """modules/api/models.py:ScriptInfo"""

    name: str | None = None
    is_alwayson: bool | None = None
    is_img2img: bool | None = None
    args: list[ScriptArg] = dataclasses.field(default_factory=list)
