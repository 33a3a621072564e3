"""The README says what the code does: its parameter table, its library example, its commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ae_lib.params import FIELDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_parameter_table_matches_the_model():
    section = README.split("### Parameters", 1)[1].split("\n## ", 1)[0]  # other sections have tables too
    rows = [r for r in section.splitlines() if r.startswith("| ") and "`" in r.split("|")[2]]
    table = {r.split("|")[2].strip(" `"): [c.strip() for c in r.split("|")[1:-1]] for r in rows}
    assert list(table) == [f.name for f in FIELDS]
    for f in FIELDS:
        label, _, default, rng, key = table[f.name][:5]
        assert label == f.label
        assert default == repr(f.default)
        assert key == (f.infotext or "—")
        if f.minimum is not None:
            assert rng == f"{f.minimum:g}–{f.maximum:g}"


def test_library_example_runs():
    (example,) = [b for b in code_blocks("python") if "run_step" in b]
    cmd = [sys.executable, "-c", example]
    out = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "tensor(" in out.stdout


def test_ci_runs_the_readme_test_command():
    setup, tests = code_blocks("bash")[-2:]
    assert setup.strip() == "bash tools/setup.sh && .venv/bin/python -m ae_demo"
    assert tests.strip() in (ROOT / ".ci" / "run").read_text()
    assert "bash tools/setup.sh" in (ROOT / ".ci" / "run").read_text()


def test_benchmark_command_is_documented_as_it_exists():
    assert "python -m benchmarks.step_cost" in README


def test_benchmark_quick_run_prints_every_ratio():
    cmd = [sys.executable, "-m", "benchmarks.step_cost", "--tiny-only", "--repeats", "1", "--warmup", "0"]
    out = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for line in ("plain CFG step", "ours: altered step", "reference way", "refinement iteration",
                 "saved for backward", "projected (20 steps, 10 altered", "contrast: altered step",
                 "contrast: refinement iteration", "bind: altered step", "divide: altered step",
                 "divide: refinement iteration", "divide: one pass (down to the finest grid)"):
        assert line in out.stdout


def test_every_picture_the_readme_shows_is_in_the_repository():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert {"docs/demo_contrast.png", "docs/demo_bind.png", "docs/demo_divide.png"} <= set(pictures)
    missing = [p for p in pictures if not (ROOT / p).is_file()]
    assert not missing, f"the README shows pictures the repository lacks: {missing}"
