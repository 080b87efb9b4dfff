"""Continue-as-new chains: the runs one logical run is made of."""

from __future__ import annotations

from ..storage.store import Store


def run_chain(store: Store, run_id: str) -> list[str]:
    """Every run of the continue-as-new chain ``run_id`` belongs to, oldest first."""
    first = run_id
    seen = {first}
    while True:
        previous = store.continued_from(first)
        if previous is None or previous in seen:
            break
        first = previous
        seen.add(first)
    chain = [first]
    while True:
        following = store.continued_by(chain[-1])
        if following is None or following in chain:
            return chain
        chain.append(following)
