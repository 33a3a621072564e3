"""Stand-in for modules/script_loading.py (v1.10.1)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

loaded_scripts: dict[str, ModuleType] = {}


def load_module(path: str) -> ModuleType:
    """modules/script_loading.py:load_module -- module name is the file's basename ("xyz_grid.py"), and the
    module is NOT put into sys.modules."""
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module
