"""Every script in examples/ runs on the real `Lab` and checks its own result (its `main()`
asserts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {"payment", "order", "versioning", "catch_up"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
async def test_example_runs_and_checks_itself(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    await module.main()
