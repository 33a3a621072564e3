"""Run by the WebUI at start-up and after installing from the Extensions tab (modules/launch_utils.py).

Attend-and-Excite needs nothing beyond what the WebUI ships (torch, gradio, PIL): this installs nothing and
downloads no weights. It only checks, and says plainly, when the host's torch is too old for what we use
(forward pre-hooks with keyword arguments need torch >= 2.0).
"""

from __future__ import annotations

from importlib import metadata


def _torch_major() -> int | None:
    try:
        return int(metadata.version("torch").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def main() -> None:
    major = _torch_major()
    if major is not None and major < 2:
        print("[Attend and Excite] torch >= 2.0 is required (the WebUI 1.10 default is 2.1.2); A&E will stay off.")


main()
