"""The import graph of server/timestep keeps the layering README "Architecture" describes: each
rule names a set of modules and what they must not import; a failure names the offending import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import timestep

PACKAGE = Path(timestep.__file__).parent

# The core's own types and errors: importable by every layer, so they import no transport,
# protobuf or SDK.
CORE = (
    "timestep.domain",
    "timestep.errors",
    "timestep.event_types",
    "timestep.ids",
    "timestep.outages",
    "timestep.periodic",
    "timestep.scope",
    "timestep.settings",
)
TRANSPORTS = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "connectrpc")


@dataclass(frozen=True)
class Rule:
    """Modules under any of `modules` (all modules if empty) import nothing under `forbidden`,
    except modules under `unless`."""

    why: str
    forbidden: tuple[str, ...]
    modules: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()

    def applies_to(self, module: str) -> bool:
        inside = not self.modules or _under(module, self.modules)
        return inside and not _under(module, self.unless)


RULES = [
    Rule("api reaches the store only through runs", ("timestep.store",), ("timestep.api",)),
    Rule("only durability knows DBOS", ("dbos",), unless=("timestep.durability",)),
    Rule(
        "the store is below runs, api and durability",
        ("timestep.runs", "timestep.api", "timestep.durability"),
        ("timestep.store",),
    ),
    Rule(
        "the RunState codec depends on nothing above it",
        ("timestep.runs", "timestep.api", "timestep.store", "timestep.durability"),
        ("timestep.state",),
    ),
    Rule(
        "the runtime knows no run orchestration, transport, store or workflow",
        ("timestep.runs", "timestep.api", "timestep.store", "timestep.durability"),
        ("timestep.runtime",),
    ),
    Rule(
        "generated protobuf code is the API's and the client commands'",
        ("timestep_client",),
        unless=("timestep.api", "timestep.commands", "timestep.cli"),
    ),
    Rule(
        "handlers serve every transport, so they import none",
        TRANSPORTS,
        ("timestep.api.handlers", "timestep.api.errors", "timestep.api.convert", "timestep.api.validation"),
    ),
    Rule(
        "the core imports no protobuf, transport or SDK",
        ("google.protobuf", "timestep_client", "agents", "openai", "dbos", *TRANSPORTS),
        CORE,
    ),
]


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `path`, relative ones resolved, including those under
    TYPE_CHECKING and inside functions."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from timestep import x` may name a module: judge timestep.x.
            names = [f"{base}.{alias.name}" for alias in node.names] if base == "timestep" else [base]
            for name in names:
                yield node.lineno, name


def violations(rule: Rule) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if not rule.applies_to(module):
            continue
        for line, imported in imports(path):
            if _under(imported, rule.forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[rule.why for rule in RULES])
def test_the_layering_holds(rule: Rule) -> None:
    found = violations(rule)
    assert not found, f"{rule.why}, but:\n" + "\n".join(found)


def test_the_scan_sees_imports_of_every_form(tmp_path: Path) -> None:
    """A rule cannot pass because the scan missed an import: absolute, relative, deferred and
    TYPE_CHECKING imports are all found."""
    seen = {name for path in PACKAGE.rglob("*.py") for _, name in imports(path)}
    assert {"dbos", "grpc", "timestep_client.v1", "timestep.store.usage", "timestep.domain"} <= seen
    bad = Rule("test rule", ("timestep.store",), ("timestep.app",))
    assert any("timestep/app.py" in line and "timestep.store" in line for line in violations(bad))


def test_every_core_module_exists() -> None:
    """The core list names real modules (a renamed module would silently leave its rule)."""
    missing = [name for name in CORE if not (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()]
    assert not missing, f"no such core modules: {missing}"
