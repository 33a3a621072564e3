"""ComfyUI's entry point: this repository is also a ComfyUI node pack (custom_nodes/<this folder>).

ComfyUI imports this folder as a package without putting it on sys.path; the engine (ae_lib) and the ComfyUI
glue (ae_comfy) import each other absolutely, so the folder goes on sys.path first. Nothing of A1111 or Forge
is imported here (they load scripts/ by path and never read this file).
"""

import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ae_comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
