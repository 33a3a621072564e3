"""Test-only WebUI extension for the tiny random-weight checkpoints of tests/realhost/checkpoints.py.

The tiny SD2 and SDXL checkpoints name an OpenCLIP architecture (`ae-tiny-openclip`) that open_clip does not
ship. A1111 runs every extension's preload.py while it parses its command line (modules/shared_cmd_options.py),
long before the first model is built (modules/initialize.py:initialize_rest starts that after loading scripts),
so registering it here is early enough. Nothing else in the host is changed.
"""

from __future__ import annotations

from pathlib import Path

OPEN_CLIP_CONFIGS = Path(__file__).resolve().parent / "open_clip"
ARCH = "ae-tiny-openclip"


def register_open_clip() -> None:
    import open_clip

    if ARCH not in open_clip.list_models():
        open_clip.add_model_config(OPEN_CLIP_CONFIGS)


def preload(parser: object) -> None:  # the hook A1111 calls (modules/script_loading.py:preload_extensions)
    register_open_clip()
