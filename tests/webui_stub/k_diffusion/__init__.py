"""Shim for the k_diffusion package: the real k-diffusion==0.0.16 `sampling.py` and `external.py` (identical to the
commit ab527a9a pinned by A1111 v1.10.1) are loaded by path as k_diffusion.sampling / k_diffusion.external;
k_diffusion.utils is the small part of utils.py they use. The real package __init__ (torchvision, skimage, ...)
is never imported."""

from __future__ import annotations

import sys

from _real_files import installed_file, load_as

from . import utils  # noqa: F401 - must exist before sampling.py runs `from . import utils`

sampling = sys.modules.get("k_diffusion.sampling") or load_as(
    "k_diffusion.sampling", installed_file("k-diffusion", "k_diffusion/sampling.py")
)
external = sys.modules.get("k_diffusion.external") or load_as(
    "k_diffusion.external", installed_file("k-diffusion", "k_diffusion/external.py")
)
