"""Continue-as-new chains: the runs one logical run is made of."""

from __future__ import annotations

from ..storage.store import Store


def run_chain(store: Store, run_id: str) -> list[str]:
    """Every run of the continue-as-new chain ``run_id`` belongs to, oldest first."""
    return store.run_chain(run_id)
