"""``smithers observability up|down``: the local OpenTelemetry collector, Prometheus, Tempo and
Grafana stack (Docker Compose files shipped in ``smithers/observability/stack``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from .app import app

observability_app = typer.Typer(
    help="A local metrics and traces stack (OpenTelemetry collector, Prometheus, Tempo, Grafana) in Docker.",
    no_args_is_help=True,
)
app.add_typer(observability_app, name="observability")

PROJECT = "smithers-observability"
URLS = (
    ("Grafana", "http://localhost:3001  (dashboard: Smithers)"),
    ("Prometheus", "http://localhost:9090"),
    ("Tempo", "http://localhost:3200"),
    ("OTLP/HTTP", "http://localhost:4318  (OTLP/gRPC: localhost:4317)"),
)


def stack_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "observability" / "stack"


def _compose_command() -> list[str]:
    """``docker compose`` (or ``docker-compose``), after checking the Docker daemon answers."""
    from ..errors import UserError

    hint = (
        "install Docker with the Compose plugin (https://docs.docker.com/get-docker/) and start the Docker daemon; "
        f"the compose file is {stack_dir() / 'docker-compose.yml'}"
    )
    docker = shutil.which("docker")
    if docker is None:
        raise UserError("smithers observability needs Docker, and there is no `docker` command on PATH", hint=hint)
    try:
        info = subprocess.run([docker, "info"], check=False, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"smithers observability needs Docker, and `docker info` did not answer: {err}", hint=hint) from None
    if info.returncode != 0:
        reason = next((line.strip() for line in (info.stderr or info.stdout).splitlines() if line.strip()), f"exit {info.returncode}")
        raise UserError(
            f"smithers observability needs Docker, and the Docker daemon is not reachable (`docker info` failed: {reason})",
            hint=hint,
        )
    version = subprocess.run(
        [docker, "compose", "version"], check=False, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    if version.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    raise UserError("smithers observability needs Docker Compose, and neither `docker compose` nor `docker-compose` works", hint=hint)


def _targets_dir(target: str) -> Path:
    """A Prometheus file_sd directory listing ``target`` (the stack's default is host.docker.internal:7331)."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "smithers" / "observability" / "targets"
    state.mkdir(parents=True, exist_ok=True)
    (state / "smithers.json").write_text(json.dumps([{"targets": [target], "labels": {"service": "smithers"}}], indent=2) + "\n")
    return state


def _compose(args: list[str], env: dict[str, str] | None = None) -> int:
    command = [*_compose_command(), "-p", PROJECT, "-f", str(stack_dir() / "docker-compose.yml"), *args]
    return subprocess.run(command, check=False, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL).returncode


@observability_app.command("up")
def up(
    metrics_target: Annotated[
        str | None,
        typer.Option(
            "--metrics-target", metavar="HOST:PORT",
            help="Where Prometheus scrapes `smithers serve` /metrics, as seen from its container "
            "(default host.docker.internal:7331).",
        ),
    ] = None,
) -> int:
    """Start the stack in the background (docker compose up -d).

    Then send traces with SMITHERS_OTEL_ENABLED=1 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318,
    and run `smithers serve` for Prometheus to scrape.

    Example: smithers observability up --metrics-target host.docker.internal:7331
    """
    env = {"SMITHERS_TARGETS_DIR": str(_targets_dir(metrics_target))} if metrics_target else None
    code = _compose(["up", "-d"], env)
    if code != 0:
        typer.echo(f"docker compose up failed (exit {code})", err=True)
        return 1
    from .format import table

    for line in table(["SERVICE", "URL"], URLS):
        typer.echo(line)
    typer.echo("traces:     export SMITHERS_OTEL_ENABLED=1 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318")
    return 0


@observability_app.command("down")
def down(
    volumes: Annotated[bool, typer.Option("--volumes", help="Also delete the stored metrics, traces and Grafana data.")] = False,
) -> int:
    """Stop the stack (docker compose down).

    Example: smithers observability down --volumes
    """
    code = _compose(["down", *(["--volumes"] if volumes else [])])
    if code != 0:
        typer.echo(f"docker compose down failed (exit {code})", err=True)
        return 1
    typer.echo("observability stack stopped")
    return 0
