"""Locates files of installed distributions so the k_diffusion/ and open_clip/ shims can load the REAL module
files by path without running those packages' __init__ (which need torchvision, skimage, ...)."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from types import ModuleType


def installed_file(distribution: str, relative: str) -> Path:
    """Path of `relative` inside an installed distribution (falls back to purelib when metadata is missing)."""
    try:
        path = Path(metadata.distribution(distribution).locate_file(relative))
        if path.is_file():
            return path
    except metadata.PackageNotFoundError:
        pass
    path = Path(sysconfig.get_paths()["purelib"]) / relative
    if not path.is_file():
        raise ImportError(f"{relative} of {distribution} is not installed")
    return path


def load_as(module_name: str, path: Path) -> ModuleType:
    """Execute a file as `module_name` (registered in sys.modules first, so relative imports work)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
