"""Attend-and-Excite, host-free: attention capture, objectives (the loss), latent update, refinement, the step
driver every host glue calls, token mapping.

Nothing here imports the WebUI, gradio, ldm or sgm; a host adapts its model and sampler to these calls.
See README.md, "Using ae_lib without the WebUI".
"""

from ae_lib.capture import AttentionCapture
from ae_lib.driver import StepDriver
from ae_lib.engine import AttendExcite, ImageTarget, StepResult, run_step
from ae_lib.objectives import Objective
from ae_lib.params import AEParams, ParseResult, parse_named, parse_positional
from ae_lib.schedule import Schedule
from ae_lib.scores import TokenRule
from ae_lib.tokens import SubjectResult, TokenColumn, map_subjects, text_columns

__all__ = [
    "AEParams",
    "AttendExcite",
    "AttentionCapture",
    "ImageTarget",
    "Objective",
    "ParseResult",
    "Schedule",
    "StepDriver",
    "StepResult",
    "SubjectResult",
    "TokenColumn",
    "TokenRule",
    "map_subjects",
    "parse_named",
    "parse_positional",
    "run_step",
    "text_columns",
]
