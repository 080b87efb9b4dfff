"""Agent commands: which CLI agents are here, and what an agent said in a run."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import DbOption, JsonOption, app
from .format import table


@app.command()
def agents(json_out: JsonOption = False) -> int:
    """List the CLI agents found on PATH, their versions, and whether credentials look configured.

    Example: smithers agents --json
    """
    from ..agents.discovery import discover

    found = discover()
    if json_out:
        typer.echo(json.dumps(found, indent=2))
        return 0
    rows = []
    for item in found:
        if not item["installed"]:
            rows.append([item["agent"], item["binary"], "not installed", f"install: {item['install']}"])
            continue
        creds = "credentials: " + (", ".join(item["credential_sources"]) if item["credentials"] else "none found")  # type: ignore[arg-type]
        rows.append([item["agent"], item["binary"], item["version"] or "?", creds])
    for line in table(["AGENT", "BINARY", "VERSION", "CREDENTIALS"], rows):
        typer.echo(line)
    return 0


@app.command()
def chat(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    node_id: Annotated[str | None, typer.Argument(help="Only this node.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Print the agent transcript of a run's attempts: prompts, replies, tool calls, usage.

    Example: smithers chat 20261203-101500-ab12cd analyze
    """
    from .. import ops
    from ..errors import UnknownNodeError

    store = ops.open_store(db)
    ops.get_run(store, run_id)
    kinds = ("AgentTurn", "AgentReply", "AgentEvent", "ToolCall", "TokenUsageReported")
    events = [e for e in store.events(run_id, node_id=node_id) if e["type"].startswith(kinds)]
    if node_id is not None and not store.nodes(run_id, node_id):
        raise UnknownNodeError(f"run {run_id} has no node {node_id!r}", hint=f"see the nodes with: smithers inspect {run_id}")
    if json_out:
        for event in events:
            typer.echo(json.dumps(event))
        return 0
    if not events:
        typer.echo(f"run {run_id}: no agent turns recorded" + (f" for {node_id}" if node_id else ""))
        return 0
    current = None
    for event in events:
        payload = event.get("payload") or {}
        header = (event.get("node_id"), event.get("iteration"), event.get("attempt"))
        if header != current:
            current = header
            typer.echo(f"\n=== {header[0]}[{header[1]}] attempt {header[2]} ===")
        kind = event["type"]
        if kind == "AgentTurn":
            typer.echo(f"\n--- turn {payload.get('turn')} ({payload.get('kind')}) → {payload.get('agent')}\n{payload.get('prompt', '')}")
        elif kind == "AgentReply":
            typer.echo(f"\n--- reply ({payload.get('outcome')})\n{payload.get('text', '')}")
            if payload.get("errors"):
                typer.echo(f"validation errors:\n{payload['errors']}")
        elif kind == "AgentEvent":
            data = payload.get("data") or {}
            if payload.get("kind") == "text":
                typer.echo(f"  · {str(data.get('text', ''))[:500]}")
            elif payload.get("kind") == "tool_use":
                typer.echo(f"  → tool {data.get('name')} {json.dumps(data.get('input'))[:300]}")
            elif payload.get("kind") == "tool_result":
                typer.echo(f"  ← {'error ' if data.get('is_error') else ''}{str(data.get('output', ''))[:300]}")
            else:
                typer.echo(f"  [{payload.get('kind')}]")
        elif kind == "TokenUsageReported":
            typer.echo(f"  usage: in {payload.get('input_tokens')} out {payload.get('output_tokens')}"
                       + (f" cost ${payload['cost_usd']}" if payload.get("cost_usd") is not None else ""))
        elif kind.startswith("ToolCall"):
            typer.echo(f"  {kind} {payload.get('tool')} {payload.get('call_id') or ''}")
    return 0
