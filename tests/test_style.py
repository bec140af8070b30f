"""The code stays ruff-clean and the typed layers pass `mypy --strict` (see pyproject.toml).

Both tools come with the `test` extra, so a missing tool is a failure, not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    assert ruff is not None, "ruff is not installed: pip install -e '.[test]'"
    result = run(ruff, "check", "raftoral_lab", "tests", "examples", "dashboards")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_typed_layers() -> None:
    result = run(sys.executable, "-m", "mypy", "raftoral_lab")
    assert result.returncode == 0, result.stdout + result.stderr
