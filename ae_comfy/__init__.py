"""ComfyUI glue: the Attend and Excite nodes over ae_lib (the host-free engine). The repository root's
__init__.py is ComfyUI's entry and re-exports the mappings below; nothing here imports A1111 or Forge, and
ComfyUI's own modules are imported only when a node runs (so this package imports anywhere)."""

from ae_comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
