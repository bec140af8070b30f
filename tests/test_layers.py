"""Guard of the one-way imports of DESIGN.md section 2.

Every module under `raftoral_lab/` is parsed (never imported) and each import statement is
resolved to the layer it reaches: `raftoral_lab.core.raft` is layer `core`, `raftoral_lab.lab`
is `lab`, the package root is `root`. Relative imports are resolved against the importing
module. A failure names the module file, the line and the import.

Rules (a layer may always import itself):
- errors      imports nothing of ours;
- core        imports core and errors, and from the stdlib only the modules in CORE_STDLIB
              (no asyncio, clock, logging or pydantic; `random` only for `random.Random`);
- storage     core, errors;
- sim         core, storage, events, errors, and of workflow ONLY its pure modules
              (SIM_WORKFLOW_MODULES: the replayable state machine and its commands, for the
              workflow chaos of `raftoral-lab sim --workflows`); those modules must stay pure:
              ours only core, errors and each other, stdlib only PURE_WORKFLOW_STDLIB (no
              asyncio, no node, no transport);
- transport   core, errors; the only package that imports `aiomqtt`;
- events      errors only (nothing of the Raft layers);
- node        core, storage, transport, events, errors;
- workflow    the same as node, plus node;
- dashboard   events, errors (and its own modules, e.g. its Controller protocol);
- kv          as workflow (an application on the same Raft: the linearizable key-value example);
- lab.py, cli, bench (the `raftoral-lab bench` tooling), chaos (`raftoral-lab chaos`) and the
  package root (`raftoral_lab/__init__.py`, the public facade) may import anything.
Packages that do not exist yet have nothing to check; a package missing from this table fails
`test_every_package_is_in_the_layer_table` until someone decides what it may import.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "raftoral_lab"  # the source tree under test
ROOT = "raftoral_lab"

ANYTHING = None  # marker: this layer may import any layer

ALLOWED: dict[str, frozenset[str] | None] = {
    "errors": frozenset(),
    "core": frozenset({"errors"}),
    "storage": frozenset({"core", "errors"}),
    "sim": frozenset({"core", "storage", "events", "errors", "workflow"}),  # see below
    "transport": frozenset({"core", "errors"}),
    "events": frozenset({"errors"}),
    "node": frozenset({"core", "storage", "transport", "events", "errors"}),
    "workflow": frozenset({"core", "storage", "transport", "events", "errors", "node"}),
    "dashboard": frozenset({"events", "errors"}),
    "lab": ANYTHING,
    "cli": ANYTHING,
    "bench": ANYTHING,  # `raftoral-lab bench` (DESIGN.md section 7): tooling, like cli
    "chaos": ANYTHING,  # `raftoral-lab chaos` (issue 10): fault runs over processes, like cli
    # the linearizable key-value example (issue 10): an application on the same Raft, like workflow
    "kv": frozenset({"core", "storage", "transport", "events", "errors", "node"}),
    # scaling out (issue 9): the management group and execution clusters, above workflow
    "scale": frozenset({"core", "storage", "transport", "events", "errors", "node", "workflow"}),
    # the sample workflow app used by `raftoral-lab demo`, node processes and benchmarks
    "samples": frozenset({"workflow"}),
    "root": ANYTHING,
}

CORE_STDLIB = frozenset(
    {
        "__future__",
        "collections",
        "collections.abc",
        "dataclasses",
        "enum",
        "typing",
        "random",
        "itertools",
        "functools",
        "math",
        "bisect",
        "heapq",
    }
)

AIOMQTT_LAYERS = frozenset({"transport"})

SIM_WORKFLOW_MODULES = frozenset(
    {"raftoral_lab.workflow.state_machine", "raftoral_lab.workflow.commands"}
)
"""The only workflow modules sim may import: pure and replayable (checked below)."""

PURE_WORKFLOW_STDLIB = frozenset(
    {"__future__", "json", "collections", "collections.abc", "dataclasses", "enum", "typing"}
)


@dataclass(frozen=True)
class Import:
    path: Path  # the importing file
    module: str  # the importing module, e.g. raftoral_lab.core.raft
    line: int
    text: str  # the import statement as written
    target: str  # the absolute module it reaches, e.g. raftoral_lab.errors

    def where(self) -> str:
        return f"{self.path.relative_to(PACKAGE_DIR.parent)}:{self.line}: `{self.text}`"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """`core` for raftoral_lab.core.x, `lab` for raftoral_lab.lab, `root` for raftoral_lab."""
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    return parts[1] if len(parts) > 1 else "root"


def is_our_module(module: str) -> bool:
    """True when `module` names a module or package file under raftoral_lab/."""
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    base = PACKAGE_DIR / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of `from X import ...`, relative forms included."""
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    base = ".".join(parts)
    return f"{base}.{node.module}" if node.module else base


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """The imports of the module file `path` (its text is read unless `source` is given)."""
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    module = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            text = ast.get_source_segment(source, node) or ""
            for alias in node.names:
                found.append(Import(path, module, node.lineno, text, alias.name))
        elif isinstance(node, ast.ImportFrom):
            text = ast.get_source_segment(source, node) or ""
            base = resolve_from(module, is_package, node)
            if layer_of(base) is None:
                found.append(Import(path, module, node.lineno, text, base))
                continue
            for alias in node.names:
                # `from raftoral_lab import errors` reaches raftoral_lab.errors, while
                # `from raftoral_lab import RaftoralError` reaches the package root
                candidate = f"{base}.{alias.name}"
                target = candidate if is_our_module(candidate) else base
                found.append(Import(path, module, node.lineno, text, target))
    return found


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


@functools.cache
def all_imports() -> tuple[Import, ...]:
    seen: set[tuple[Path, int, str]] = set()
    unique: list[Import] = []
    for path in all_modules():
        for imp in imports_of(path):
            key = (imp.path, imp.line, imp.target)
            if key not in seen:  # `from x import a, b` reaches x once
                seen.add(key)
                unique.append(imp)
    return tuple(unique)


def layer_violations(imports: Sequence[Import] | None = None) -> list[str]:
    problems: list[str] = []
    for imp in all_imports() if imports is None else imports:
        source_layer = layer_of(imp.module)
        target_layer = layer_of(imp.target)
        if source_layer is None or target_layer is None or target_layer == source_layer:
            continue
        allowed = ALLOWED.get(source_layer, frozenset())
        if allowed is ANYTHING:
            continue
        if target_layer not in allowed:
            problems.append(
                f"{imp.where()}: layer `{source_layer}` must not import `{imp.target}` "
                f"(layer `{target_layer}`); `{source_layer}` may import only "
                f"{sorted(allowed) or 'nothing of ours'} (DESIGN.md section 2)"
            )
    return problems


def core_stdlib_violations(imports: Sequence[Import] | None = None) -> list[str]:
    problems: list[str] = []
    for imp in all_imports() if imports is None else imports:
        if layer_of(imp.module) != "core" or layer_of(imp.target) is not None:
            continue
        if imp.target not in CORE_STDLIB:
            problems.append(
                f"{imp.where()}: core may import from the stdlib only {sorted(CORE_STDLIB)}, "
                f"not `{imp.target}` (the core is sans-I/O: no asyncio, clock, logging, pydantic)"
            )
    return problems


def core_random_violations() -> list[str]:
    """`random` in core only for `random.Random` instances, never the global generator."""
    problems: list[str] = []
    for path in all_modules():
        if layer_of(module_name(path)) != "core":
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        rel = path.relative_to(PACKAGE_DIR.parent)
        random_names = {"random"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "random" and alias.asname:
                        random_names.add(alias.asname)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "random":
                bad = [a.name for a in node.names if a.name != "Random"]
                if bad:
                    problems.append(
                        f"{rel}:{node.lineno}: `{ast.get_source_segment(source, node)}`: core "
                        f"may use only random.Random instances, not the global {bad}"
                    )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in random_names
                and node.attr != "Random"
            ):
                problems.append(
                    f"{rel}:{node.lineno}: `{ast.get_source_segment(source, node)}`: core may "
                    "use only random.Random instances (seeded by the driver), never the global "
                    "generator"
                )
    return problems


def aiomqtt_violations(imports: Sequence[Import] | None = None) -> list[str]:
    problems: list[str] = []
    for imp in all_imports() if imports is None else imports:
        if imp.target.split(".")[0] != "aiomqtt":
            continue
        if layer_of(imp.module) not in AIOMQTT_LAYERS:
            problems.append(
                f"{imp.where()}: only the transport package may import aiomqtt "
                "(DESIGN.md section 2); go through raftoral_lab.transport instead"
            )
    return problems


def sim_workflow_violations(imports: Sequence[Import] | None = None) -> list[str]:
    """sim reaches only SIM_WORKFLOW_MODULES of workflow, and those import nothing async."""
    problems: list[str] = []
    for imp in all_imports() if imports is None else imports:
        source_layer, target_layer = layer_of(imp.module), layer_of(imp.target)
        if source_layer == "sim" and target_layer == "workflow":
            if imp.target not in SIM_WORKFLOW_MODULES:
                problems.append(
                    f"{imp.where()}: sim may import of workflow only "
                    f"{sorted(SIM_WORKFLOW_MODULES)} (pure, no asyncio), not `{imp.target}`"
                )
        elif imp.module in SIM_WORKFLOW_MODULES:
            pure = (
                imp.target in PURE_WORKFLOW_STDLIB
                if target_layer is None
                else target_layer in ("core", "errors") or imp.target in SIM_WORKFLOW_MODULES
            )
            if not pure:
                problems.append(
                    f"{imp.where()}: `{imp.module}` is imported by the simulator and must stay "
                    f"pure (core, errors, {sorted(PURE_WORKFLOW_STDLIB)}), not `{imp.target}`"
                )
    return problems


# --- the guard ------------------------------------------------------------------------------


def test_every_module_parses_and_is_seen() -> None:
    modules = {module_name(p) for p in all_modules()}
    assert {"raftoral_lab", "raftoral_lab.errors", "raftoral_lab.core.raft"} <= modules
    assert any(imp.target == "raftoral_lab.errors" for imp in all_imports())


def test_every_package_is_in_the_layer_table() -> None:
    layers = {layer_of(module_name(p)) for p in all_modules()}
    unknown = sorted(layer for layer in layers if layer not in ALLOWED)
    assert not unknown, (
        f"raftoral_lab/{unknown[0]} is in no layer of DESIGN.md section 2: add it to ALLOWED in "
        "tests/test_layers.py with the layers it may import"
    )


def test_imports_follow_the_layers() -> None:
    problems = layer_violations()
    assert not problems, "imports against DESIGN.md section 2:\n" + "\n".join(problems)


def test_core_uses_only_its_stdlib_modules() -> None:
    problems = core_stdlib_violations()
    assert not problems, "\n".join(problems)


def test_core_never_touches_the_global_random_generator() -> None:
    problems = core_random_violations()
    assert not problems, "\n".join(problems)


def test_sim_imports_only_the_pure_workflow_modules() -> None:
    problems = sim_workflow_violations()
    assert not problems, "\n".join(problems)


def test_the_sim_workflow_guard_catches_async_imports() -> None:
    sim = PACKAGE_DIR / "sim" / "fake.py"  # never written: parsed as if it lived there
    bad_sim = imports_of(sim, "from raftoral_lab.workflow.runtime import WorkflowRuntime\n")
    assert len(sim_workflow_violations(bad_sim)) == 1
    pure = PACKAGE_DIR / "workflow" / "commands.py"
    bad_pure = imports_of(pure, "import asyncio\nfrom raftoral_lab.node import Node\n")
    assert len(sim_workflow_violations(bad_pure)) == 2


def test_only_transport_imports_aiomqtt() -> None:
    problems = aiomqtt_violations()
    assert not problems, "\n".join(problems)


# --- the guard's own resolution rules, on synthetic sources ---------------------------------


def test_relative_and_package_imports_resolve() -> None:
    src = (
        "from .. import errors\n"
        "from ..errors import RaftError\n"
        "from . import log\n"
        "from raftoral_lab import RaftoralError\n"
        "from raftoral_lab.sim import Simulation\n"
        "import raftoral_lab.storage.memory\n"
    )
    fake = PACKAGE_DIR / "core" / "fake.py"  # never written: parsed as if it lived there
    targets = [imp.target for imp in imports_of(fake, src)]
    assert targets == [
        "raftoral_lab.errors",
        "raftoral_lab.errors",
        "raftoral_lab.core.log",
        "raftoral_lab",
        "raftoral_lab.sim",
        "raftoral_lab.storage.memory",
    ]
    assert [layer_of(t) for t in targets] == ["errors", "errors", "core", "root", "sim", "storage"]


def test_a_violation_names_module_line_and_import() -> None:
    fake = PACKAGE_DIR / "core" / "fake.py"  # never written: parsed as if it lived there
    src = (
        "from __future__ import annotations\n"
        "\n"
        "import asyncio\n"
        "from raftoral_lab.sim import Simulation\n"
        "import aiomqtt\n"
    )
    imports = imports_of(fake, src)
    (layer,) = layer_violations(imports)
    assert layer.startswith(
        "raftoral_lab/core/fake.py:4: `from raftoral_lab.sim import Simulation`"
    )
    assert "layer `core` must not import `raftoral_lab.sim`" in layer
    stdlib = core_stdlib_violations(imports)
    assert [p.split(": core")[0] for p in stdlib] == [
        "raftoral_lab/core/fake.py:3: `import asyncio`",
        "raftoral_lab/core/fake.py:5: `import aiomqtt`",
    ]
    (mqtt,) = aiomqtt_violations(imports)
    assert mqtt.startswith("raftoral_lab/core/fake.py:5: `import aiomqtt`")
