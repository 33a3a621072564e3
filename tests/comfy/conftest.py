"""One real ComfyUI (a125cd84, CPU) for the tests of this folder, with this checkout in custom_nodes/ and the Forge test
checkpoints (ComfyUI detects them as SD15 and KOALA_700M). Without the ComfyUI source the tests skip, except
under CI=true, where a missing host is a failure."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.comfy.server import ComfyUI
from tests.realhost import hostenv

pytestmark = pytest.mark.comfyui
TIMINGS: dict[str, float] = {}


def _install(kind: str) -> hostenv.HostInstall:
    try:
        return hostenv.ensure(kind)
    except hostenv.HostUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs the real host: {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="package")  # stopped once tests/comfy is done: the WebUI hosts run after it
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyUI]:
    t0 = time.monotonic()
    install = _install("comfyui")
    TIMINGS["comfyui venv+source"] = time.monotonic() - t0
    t0 = time.monotonic()
    from tests.realhost.checkpoints_forge import VERSION, build_with

    # The Forge builder runs in Forge's venv (the checkpoints are the Forge test models, built once per version).
    forge = _install("forge")
    files = build_with(forge, hostenv.CACHE / f"ckpt-forge-v{VERSION}")  # the folder models.ensure uses
    TIMINGS["comfyui checkpoints"] = time.monotonic() - t0
    server = ComfyUI(install, tmp_path_factory.mktemp("comfyui-host") / "comfyui", files)
    server.prepare()
    server.start()
    TIMINGS["comfyui start"] = server.started_s
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items())
        terminalreporter.write_line(f"real ComfyUI: {parts}")
