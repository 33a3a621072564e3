"""Stand-in for modules/paths.py + paths_internal.py (v1.10.1): the webui root is this stand-in folder."""

from __future__ import annotations

from pathlib import Path

# modules/paths_internal.py: script_path = webui root (holds scripts/ and modules/processing_scripts/)
script_path: str = str(Path(__file__).resolve().parents[1])
# modules/paths_internal.py: data_path (params.txt, ui-config); only used as a name here, nothing is written
data_path: str = script_path
