"""k-diffusion's real sampler loops (k-diffusion==0.0.16, the code the WebUI pins) without its package __init__,
which needs torchvision and scikit-image: sampling.py and external.py are loaded by path under a small
`k_diffusion` package whose `utils` holds the one helper they use."""

from __future__ import annotations

import importlib.util
import sys
import types
from importlib import metadata

import torch


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def _load(name: str, relative: str) -> types.ModuleType:
    path = metadata.distribution("k-diffusion").locate_file(relative)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load() -> types.ModuleType:
    """The `k_diffusion` package with `.sampling` and `.external` (reuses one already in sys.modules)."""
    package = sys.modules.get("k_diffusion")
    if package is not None and hasattr(package, "sampling") and hasattr(package, "external"):
        return package
    package = types.ModuleType("k_diffusion")
    package.__path__ = []
    package.utils = types.ModuleType("k_diffusion.utils")
    package.utils.append_dims = _append_dims
    sys.modules["k_diffusion"], sys.modules["k_diffusion.utils"] = package, package.utils
    package.sampling = _load("k_diffusion.sampling", "k_diffusion/sampling.py")
    package.external = _load("k_diffusion.external", "k_diffusion/external.py")
    return package
