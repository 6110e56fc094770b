"""Imports go one way: no cycles among storebridge's modules, nothing below the edges imports the
composition root, and only the providers' own folders reach their adapters and emulators.

Every import statement counts (module level, under TYPE_CHECKING, inside a function), read from the
source with the ast module: nothing is imported to find them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "storebridge"

# The edges may import the composition root: they start it.
EDGES = ("storebridge.api", "storebridge.admin", "storebridge.cli", "storebridge.__main__", "storebridge.bootstrap")

# Being changed by the webhook-intake helper (issue 18, item 5) to take a narrow intake object instead of
# the Hub; the lead removes this after merging that work.
INTAKE_REWORK = frozenset({"storebridge.webhooks.fast_http", "storebridge.webhooks.routes"})

BUILT_IN_PROVIDERS = ("stripe", "paypal", "shippo", "sendgrid", "smtp", "inventory_http")

# Outside storebridge/providers/, who may import a provider folder or a sandbox emulator, and why.
PROVIDER_IMPORTERS = {
    # The sandbox kit's own modules import each other (an emulator its state, forms and objects).
    "storebridge.sandbox": "the emulator kit itself",
    # `storebridge inventory sync` drives the external inventory system's batch client directly: a
    # command-line edge of the inventory capability.
    "storebridge.inventory.cli": "the `storebridge inventory sync` command drives the external system's client",
}

# Sandbox modules that are no emulator, and so may be imported from anywhere.
SANDBOX_INFRASTRUCTURE = {
    # Keeps the embedded emulators' state in the hub's database; knows only to_dict/from_dict.
    "storebridge.sandbox.persistence": "the composition root keeps emulator state through it",
    # The `sandbox_state` table, which storebridge.models lists with every other table for Alembic.
    "storebridge.sandbox.model": "the sandbox_state table, listed by storebridge.models for migrations",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str) -> Iterator[str]:
    """The storebridge modules `module` imports, by any import statement anywhere in it."""
    modules = _modules()
    path = modules[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            # `from package import submodule` imports the submodule; `from module import name` the module.
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("storebridge") and name in modules and name != module:
                yield name


@cache
def _graph() -> dict[str, frozenset[str]]:
    return {m: frozenset(_imports(m)) for m in _modules()}


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".") or module.startswith(prefix + "_")


def test_the_walk_sees_function_local_and_type_checking_imports() -> None:
    """The import walk finds the imports a cycle check must count (bootstrap loads plugins lazily)."""
    graph = _graph()
    assert "storebridge.providers.registry" in graph["storebridge.bootstrap"]
    assert "storebridge.sandbox.stripe" in graph["storebridge.providers.stripe.plugin"]  # function-local


def test_no_import_cycles() -> None:
    """No two storebridge modules import each other, directly or round a loop."""
    assert _cycles(_graph()) == []


@pytest.mark.parametrize(
    "rework",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.xfail(
                reason="webhooks/fast_http.py and routes.py take the Hub until the webhook-intake helper's branch "
                "(a narrow intake object) is merged",
                strict=True,
            ),
        ),
    ],
)
def test_nothing_below_the_edges_imports_the_composition_root(rework: bool) -> None:
    """Capability and infrastructure modules receive narrow dependencies; only the edges import bootstrap."""
    importers = sorted(
        m
        for m, imported in _graph().items()
        if "storebridge.bootstrap" in imported and not any(_within(m, edge) for edge in EDGES)
    )
    if rework:
        assert importers == []
    else:
        assert [m for m in importers if m not in INTAKE_REWORK] == []


def test_only_provider_folders_import_adapters_and_emulators() -> None:
    """Core code never imports a provider's adapter or an emulator; the registry loads plugins by entry point."""
    providers = tuple(f"storebridge.providers.{name}" for name in BUILT_IN_PROVIDERS)
    offenders = []
    for module, imported in _graph().items():
        if _within(module, "storebridge.providers") or any(_within(module, m) for m in PROVIDER_IMPORTERS):
            continue
        for target in imported:
            emulator = _within(target, "storebridge.sandbox") and target not in SANDBOX_INFRASTRUCTURE
            if emulator or any(_within(target, p) for p in providers):
                offenders.append(f"{module} -> {target}")
    assert offenders == []


def test_sandbox_persistence_is_the_only_sandbox_module_the_root_imports() -> None:
    """The composition root keeps emulator state through sandbox.persistence and knows no emulator."""
    sandbox = {t for t in _graph()["storebridge.bootstrap"] if _within(t, "storebridge.sandbox")}
    assert sandbox <= set(SANDBOX_INFRASTRUCTURE)
