"""Start a real ComfyUI on CPU on a free loopback port, talk to it through /prompt, /history and /view, stop it.

Each session runs its own copy of the ComfyUI tree (outputs, user data and custom_nodes never touch the cached
source). This checkout is linked into custom_nodes/ as a user's clone would be, beside the test-only probe pack.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.realhost.hostenv import ROOT, HostInstall
from tests.realhost.server import free_port, host_env

PACK_NAME = "sd-webui-attend-and-excite"
PROBE = Path(__file__).resolve().parent / "probe_nodes"
START_TIMEOUT_S = float(os.environ.get("AE_HOST_START_TIMEOUT", "420"))
ARGS = ["--cpu", "--listen", "127.0.0.1", "--disable-auto-launch", "--disable-api-nodes", "--preview-method", "none"]


class PromptRejected(RuntimeError):
    """POST /prompt answered 400: the prompt failed validation."""

    def __init__(self, body: dict) -> None:
        super().__init__(json.dumps(body)[:3000])
        self.body = body


@dataclass
class Outcome:
    prompt_id: str
    history: dict[str, Any]
    log: str  # what the server printed while this prompt ran

    @property
    def status(self) -> str:
        return str(self.history.get("status", {}).get("status_str"))

    @property
    def messages(self) -> list[Any]:
        return list(self.history.get("status", {}).get("messages", []))

    def message(self, kind: str) -> dict[str, Any] | None:
        return next((m[1] for m in self.messages if m[0] == kind), None)

    def outputs(self, node: str) -> dict[str, Any]:
        return self.history.get("outputs", {}).get(node, {})


@dataclass
class ComfyUI:
    install: HostInstall
    workdir: Path
    checkpoints: dict[str, Path]
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    started_s: float = 0.0
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        shutil.copytree(self.install.source, self.workdir, symlinks=True)
        nodes = self.workdir / "custom_nodes"
        nodes.mkdir(exist_ok=True)
        (nodes / PACK_NAME).symlink_to(ROOT, target_is_directory=True)
        (nodes / "ae_test_probe").symlink_to(PROBE, target_is_directory=True)
        ckpts = self.workdir / "models" / "checkpoints"
        ckpts.mkdir(parents=True, exist_ok=True)
        for path in self.checkpoints.values():
            (ckpts / path.name).symlink_to(path)

    def link_checkpoint(self, name: str, family: str) -> None:
        """A checkpoint file of another name that is one of the test checkpoints (a workflow as shipped)."""
        link = self.workdir / "models" / "checkpoints" / name
        if not link.exists():
            link.symlink_to(self.checkpoints[family])

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.workdir / "comfyui.log"
        cmd = [str(self.install.python), "main.py", *ARGS, "--port", str(self.port)]
        t0 = time.monotonic()
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=host_env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        while not self._answers():
            exited = self.proc.poll()
            late = time.monotonic() - t0 > START_TIMEOUT_S
            if exited is not None or late:
                self.stop()
                what = f"exited with {exited}" if exited is not None else f"did not answer in {START_TIMEOUT_S:.0f} s"
                raise RuntimeError(f"ComfyUI {what} while starting:\n{self.log_tail()}")
            time.sleep(1.0)
        self.started_s = time.monotonic() - t0

    def _answers(self) -> bool:
        try:
            self.get("/system_stats", timeout=5)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after 20 s."""
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if self.proc is None or self.proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # --- HTTP ---------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None, timeout: float = 60) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            kind = r.headers.get("Content-Type", "")
        if "json" in kind:
            return json.loads(body) if body else None
        return body

    def get(self, path: str, timeout: float = 60) -> Any:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, payload: Any, timeout: float = 60) -> Any:
        return self.request("POST", path, payload, timeout=timeout)

    def queue(self, prompt: dict[str, Any]) -> str:
        try:
            out = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code == 400:
                raise PromptRejected(json.loads(body)) from None
            raise RuntimeError(f"/prompt: HTTP {error.code}: {body[:2000]!r}\n{self.log_tail()}") from None
        if out.get("node_errors"):  # some outputs were valid and queued, others refused: treat it as refused
            raise PromptRejected(out)
        return str(out["prompt_id"])

    def wait(self, prompt_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if history else None
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict[str, Any], timeout: float = 600) -> Outcome:
        start = len(self.log_text())
        prompt_id = self.queue(prompt)
        history = self.wait(prompt_id, timeout)
        time.sleep(0.1)  # the "Prompt executed" line follows the history entry
        return Outcome(prompt_id, history, self.log_text()[start:])

    def free(self) -> None:
        """Drop ComfyUI's node cache so that the next prompt runs every node again (POST /free)."""
        self.post("/free", {"free_memory": True, "unload_models": False})
        time.sleep(1.5)  # the flag is read by the prompt worker between prompts

    def image(self, info: dict[str, Any]) -> Any:
        """Decoded pixels of one /history image entry (PNG bytes differ run to run: the workflow is embedded)."""
        import numpy as np
        from PIL import Image

        query = urllib.parse.urlencode({k: info[k] for k in ("filename", "subfolder", "type")})
        data = self.get(f"/view?{query}")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def images(self, outcome: Outcome, node: str) -> list[Any]:
        return [self.image(i) for i in outcome.outputs(node).get("images", [])]


SCORE_LINE = re.compile(r"A&E image (\d+): (.*?);")


def window_scores(log: str) -> dict[int, list[tuple[str, float]]]:
    """The console's end-of-window lines ("A&E image 1: cat 0.91, frog 0.42; ...") by image."""
    from ae_lib.report import parse_scores

    return {int(m.group(1)): parse_scores(m.group(2)) for m in SCORE_LINE.finditer(log)}
