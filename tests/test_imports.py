"""The layers of DESIGN §10.1 are held by the suite, not only by `.ci/run`: every import-linter
contract in pyproject.toml ([tool.importlinter]) is checked here, one test per contract, against
the `smithers` package that this interpreter imports (the imports inside functions count too).

Every contract is kept: a change that breaks one fails here, with import-linter's report of the
imports that break it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

try:
    from importlinter import api as _configured  # noqa: F401  (importing it configures import-linter)
    from importlinter.application import output, use_cases
    from importlinter.domain.contract import Contract, ContractCheck
except ImportError as err:  # pragma: no cover - only without the test extras
    raise ImportError(f"{err}: tests/test_imports.py needs import-linter, from the test extras: run scripts/setup") from err

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
CONTRACT_NAMES = [contract["name"] for contract in CONTRACTS]

LAYERS = next(name for name in CONTRACT_NAMES if name.startswith("layers"))

# DESIGN §10.1, top to bottom; a layer may import only the layers below it. Within a layer the
# verbs may call one another; the rest are independent of one another.
DESIGN_LAYERS = [
    ["cli"],
    ["mcp", "server"],
    [
        "background", "cron", "dbtools", "decisions", "evals", "history", "memory", "ops", "pack", "queries", "scorers", "supervisor",
        "undo", "worker",
    ],
    ["engine"],
    ["components"],
    ["agents", "authoring", "events", "observability", "snapshots"],
    ["tools"],
    ["storage"],
    ["errors", "states"],
]


@pytest.fixture(scope="module")
def report() -> dict[str, tuple[Contract, ContractCheck]]:
    """Every contract's check, from one import graph (no cache: the graph is built afresh)."""
    use_cases._register_built_in_contract_types()  # what `lint-imports` does first (import-linter is pinned)
    options = use_cases.read_user_options(str(PYPROJECT))
    checked = use_cases.create_report(options, cache_dir=None)
    return {contract.name: (contract, check) for contract, check in checked.get_contracts_and_checks()}


def test_the_layers_contract_is_the_one_of_the_design(report: dict[str, tuple[Contract, ContractCheck]]) -> None:
    assert set(report) == set(CONTRACT_NAMES)
    layers, _ = report[LAYERS]
    declared = [sorted(tail.name for tail in layer.module_tails) for layer in layers.layers]  # type: ignore[attr-defined]
    assert declared == DESIGN_LAYERS
    independent = [layer.is_independent for layer in layers.layers if len(layer.module_tails) > 1]  # type: ignore[attr-defined]
    assert independent == [True, False, True, True], (
        "the front ends are independent of each other; the verbs may call one another; the other shared layers are independent"
    )


def _explain(contract: Contract, check: ContractCheck) -> str:
    with output.console.capture() as captured:
        contract.render_broken_contract(check)
    return captured.get()


@pytest.mark.parametrize("name", [pytest.param(contract["name"], id=contract["type"]) for contract in CONTRACTS])
def test_import_contract_is_kept(report: dict[str, tuple[Contract, ContractCheck]], name: str) -> None:
    contract, check = report[name]
    assert check.kept, f"import-linter contract {name!r} is broken (run `lint-imports` for the same report):\n{_explain(contract, check)}"
