"""Start a real WebUI (A1111, Forge, Forge Classic, Forge Neo or SD.Next) on CPU on a free loopback port, wait until
its API answers, stop it by its process group.

Each session works in its own copy of the host tree, so outputs, config.json and the extensions folder never
touch the cached source. This checkout is linked into `extensions/`, as a user's clone would be.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.realhost.hostenv import ROOT, HostInstall

EXTENSION_NAME = "sd-webui-attend-and-excite"
SUPPORT_EXT = Path(__file__).resolve().parent / "support_ext"
START_TIMEOUT_S = float(os.environ.get("AE_HOST_START_TIMEOUT", "420"))
COMMON_ARGS = [
    "--skip-prepare-environment", "--skip-torch-cuda-test", "--skip-version-check", "--api", "--server-name",
    "127.0.0.1", "--no-hashing",
]
READY_LINE = "Startup time:"
# Each host's own flags (SOURCES.md). Forge Neo has no --no-download-sd-model / --do-not-download-clip (it downloads
# nothing), takes --cpu for Forge's --always-cpu and --ckpt-dirs for --ckpt-dir; Classic has no
# --do-not-download-clip; both check the Python version (Classic 3.10, Neo 3.13) and run pip unless told not to.
HOST_ARGS = {
    "a1111": ["--no-download-sd-model", "--do-not-download-clip", "--use-cpu", "all", "--no-half",
              "--opt-sdp-attention"],
    "forge": ["--no-download-sd-model", "--do-not-download-clip", "--always-cpu"],
    "classic": ["--no-download-sd-model", "--skip-install", "--skip-python-version-check", "--always-cpu"],
    "neo": ["--skip-install", "--skip-python-version-check", "--cpu"],
}
CKPT_DIR_ARG = {"neo": "--ckpt-dirs"}  # the others: --ckpt-dir
# SD.Next has a launcher of its own (SOURCES.md): none of the A1111 flags above; the API is on by default, `--skip-all`
# skips every install and git step; models come from config.json (`diffusers_dir`, `sd_model_checkpoint`).
OWN_LAUNCHER_ARGS = {"sdnext": ["--skip-all", "--server-name", "127.0.0.1", "--api-log"]}
# Options a test host starts with: no live previews (they decode latents on the CPU at every few steps),
# no update checks, no saving of grids.
BASE_CONFIG = {
    "live_previews_enable": False,
    "show_progress_every_n_steps": -1,
    "grid_save": False,
    "samples_save": False,
    "save_images_add_number": True,
    "sd_checkpoint_hash": "",
}
# Neo asks on stdin about an "old version" unless config.json carries its VERSION_UID (modules/launch_utils.py).
# SD.Next: offline_mode blocks its runtime pip installs and makes model loading local-only.
# (show_progress_every_n_steps: SD.Next's minimum is 0, which turns previews off there.) SD.Next limits API
# requests per minute by default (modules/api/validate.py: server_rate_limit); the tests send more: 0 is no limit.
HOST_CONFIG = {"neo": {"VERSION_UID": "PY313"},
               "sdnext": {"offline_mode": True, "show_progress_every_n_steps": 0, "server_rate_limit": 0}}
# SD.Next: TORCHDYNAMO_DISABLE skips a 50 s torch.compile self-test; no __pycache__ in the linked extension.
HOST_ENV = {"sdnext": {"TORCHDYNAMO_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host_env(kind: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", DO_NOT_TRACK="1",
        GRADIO_ANALYTICS_ENABLED="False",
        # torch's OpenMP threads spin after each op; a second busy process then slows a call ~100x on 2 cores.
        GOMP_SPINCOUNT="1000", OMP_WAIT_POLICY="PASSIVE",
        PYTHONUNBUFFERED="1",
    )
    env.update(HOST_ENV.get(kind, {}))
    return env


@dataclass
class WebUI:
    install: HostInstall
    workdir: Path
    ckpt_dir: Path
    extra_args: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # more config.json entries (SD.Next: its model)
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    started_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self, with_extension: bool = True) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        shutil.copytree(self.install.source, self.workdir, symlinks=True)
        ext = self.workdir / "extensions"
        ext.mkdir(exist_ok=True)
        if with_extension:
            (ext / EXTENSION_NAME).symlink_to(ROOT, target_is_directory=True)
        if self.install.kind.name not in OWN_LAUNCHER_ARGS:  # its preload/probe are for the A1111 family
            (ext / "ae-test-support").symlink_to(SUPPORT_EXT, target_is_directory=True)
        config = {**BASE_CONFIG, **HOST_CONFIG.get(self.install.kind.name, {}), **self.config}
        (self.workdir / "config.json").write_text(json.dumps(config))
        # Neo's default temp_dir is <data>/tmp, created only when the option changes (modules/ui_tempdir.py); with
        # samples_save off the UI's gallery writes each image there and fails on a fresh tree without it.
        (self.workdir / "tmp").mkdir(exist_ok=True)
        # Files the tiny checkpoints' build leaves for models/VAE-approx/ (vaeapprox-sdxl.pt: SDXL would download it).
        approx = self.ckpt_dir / "VAE-approx"
        if approx.is_dir():
            target = self.workdir / "models" / "VAE-approx"
            target.mkdir(parents=True, exist_ok=True)
            for file in approx.iterdir():
                shutil.copy2(file, target / file.name)

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.workdir / "webui.log"
        kind = self.install.kind.name
        if kind in OWN_LAUNCHER_ARGS:
            args = [str(self.install.python), "launch.py", *OWN_LAUNCHER_ARGS[kind], "--port", str(self.port),
                    *self.extra_args]
        else:
            args = [
                str(self.install.python), "launch.py", *COMMON_ARGS, *HOST_ARGS[kind], "--port", str(self.port),
                CKPT_DIR_ARG.get(kind, "--ckpt-dir"), str(self.ckpt_dir), *self.extra_args,
            ]
        t0 = time.monotonic()
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.workdir, env=host_env(kind), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the WebUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            # The routes answer before the host is done: Forge's Api.__init__ adds them, then fills its default
            # script args (modules/api/api.py); a txt2img with alwayson args in between fails with IndexError.
            # Both hosts print "Startup time:" once the APIs and app_started callbacks are in (webui.py).
            if READY_LINE in self.log_text() and self._answers("/sdapi/v1/samplers"):
                return
            time.sleep(1.0)
        raise TimeoutError(f"the WebUI did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after 20 s; also when the leader is gone but a child of it
        lingers (Neo's process stays after its server closes)."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break  # no process of the group is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
            if not _group_alive(self.proc.pid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    # --- the API -------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, payload: Any = None, timeout: float = 900) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                body = r.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:2000]
            raise RuntimeError(f"{method} {path}: HTTP {error.code}: {detail!r}\n{self.log_tail()}") from None
        return json.loads(body) if body else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, payload: Any, timeout: float = 900) -> Any:
        return self.call("POST", path, payload, timeout)
