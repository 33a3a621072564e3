"""Attend-and-Excite for diffusers' StableDiffusion(XL) pipelines and their img2img pipelines, over ae_lib.

    with attend_and_excite(pipe, subjects="cat, frog") as ae:
        image = pipe("a cat and a frog").images[0]
    print(ae.scores)  # per image: each subject's score at the last altered step

See README.md, "Using A&E with diffusers". `DiffusersStep` is the per-step piece for hosts with their own loop.
"""

from ae_diffusers.schedulers import KNOWN, TWO_CALLS, refusal
from ae_diffusers.session import AERun, AEWarning, AttendExciteSession, attend_and_excite
from ae_diffusers.step import DiffusersStep, pipeline_schedule
from ae_diffusers.tokens import image_targets, prompt_columns, token_rule

__all__ = [
    "KNOWN",
    "TWO_CALLS",
    "AERun",
    "AEWarning",
    "AttendExciteSession",
    "DiffusersStep",
    "attend_and_excite",
    "image_targets",
    "pipeline_schedule",
    "prompt_columns",
    "refusal",
    "token_rule",
]
