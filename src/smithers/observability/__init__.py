"""Observability: Prometheus metrics built from the database, OpenTelemetry traces of runs.

- :func:`render_metrics` (``smithers.observability.metrics``): the Prometheus text for
  ``GET /metrics``, covering every run on the store whichever process executes it.
- :func:`attach_tracing` (``smithers.observability.tracing``): with
  ``SMITHERS_OTEL_ENABLED=1``, a commit listener that exports a run's spans over OTLP/HTTP.

Both import their optional dependencies (``prometheus-client``; the ``otel`` extra) lazily,
so importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..storage.store import Store


def render_metrics(store: Store) -> tuple[bytes, str]:
    from .metrics import render_metrics as render

    return render(store)


def observe_transaction(seconds: float) -> None:
    from .metrics import observe_transaction as observe

    observe(seconds)


def attach_tracing(store: Store, run_id: str) -> Any:
    from .tracing import attach_tracing as attach

    return attach(store, run_id)


__all__ = ["attach_tracing", "observe_transaction", "render_metrics"]
