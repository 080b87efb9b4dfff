"""Continue-as-new chains: the runs one logical run is made of."""

from __future__ import annotations

from ..storage.store import Store

def run_chain(store: Store, run_id: str) -> list[str]:
    """Every run of the continue-as-new chain ``run_id`` belongs to, oldest first."""
    first = run_id
    seen = {first}
    while True:
        row = store.conn.execute("SELECT continued_from FROM _smithers_runs WHERE run_id = ?", (first,)).fetchone()
        if not row or not row[0] or row[0] in seen:
            break
        first = row[0]
        seen.add(first)
    chain = [first]
    while True:
        row = store.conn.execute("SELECT run_id FROM _smithers_runs WHERE continued_from = ?", (chain[-1],)).fetchone()
        if not row or row[0] in chain:
            return chain
        chain.append(row[0])
