/* What the run page knows about one run: the run detail (GET /v1/runs/{id}), the node states
 * replayed from its event stream, the latest plan tree and the events. Plain data and functions
 * of it; the views draw from it. */
import { errorMessage } from "./format.js";
import { isWaiting } from "./meta.js";

export const MAX_EVENTS = 5000;

// A node that failed and will run again shows "retrying" until its next attempt starts: a
// display state of the dashboard, not a stored status.
export const RETRYING = "retrying";

const RUN_STATUS_OF_EVENT = { RunFinished: "finished", RunFailed: "failed", RunCancelled: "cancelled", RunContinuedAsNew: "continued", RunStarted: "running" };

export function createRunModel(runId, selected) {
  return {
    runId,
    run: null,               // the run detail
    detailNodes: new Map(),  // key → node entry of the run detail
    live: new Map(),         // key → {id, iteration, status, attempt, started, ended, error} from events
    tree: null,              // the latest frame's plan tree
    frames: 0,
    events: [],
    inbox: [],               // the inbox items of this run
    selected,                // the node shown in the detail panel
  };
}

export const nodeKey = (id, iteration) => id + "\u0000" + (iteration || 0);

/** Take in a fresh run detail. */
export function setRunDetail(model, run) {
  model.run = run;
  if (typeof run.frames === "number") model.frames = Math.max(model.frames, run.frames);
  model.detailNodes.clear();
  for (const n of run.nodes || []) {
    const id = n.id ?? n.node_id;
    model.detailNodes.set(nodeKey(id, n.iteration), { ...n, id, iteration: n.iteration || 0 });
  }
}

/** A node's state: the live stream first, then the run detail, then the plan. */
export function nodeState(model, id, iteration, planStatus) {
  const key = nodeKey(id, iteration);
  const live = model.live.get(key);
  const detail = model.detailNodes.get(key);
  const attempts = (detail && detail.attempts) || [];
  const last = attempts[attempts.length - 1];
  const status = (live && live.status) || (detail && detail.status) || planStatus || "pending";
  return {
    id,
    iteration: iteration || 0,
    status,
    attempt: (live && live.attempt) || (last && last.attempt) || null,
    started: (live && live.started) || (last && last.started_at_ms) || null,
    ended: live ? live.ended : (last && last.finished_at_ms) || null,
    error: status === "finished" ? null : (live && live.error) || (last && last.error && errorMessage(last.error)) || null,
  };
}

/** Every node the run detail or the stream has seen. */
export function allNodes(model) {
  const seen = new Map();
  for (const [k, v] of model.detailNodes) seen.set(k, [v.id, v.iteration]);
  for (const [k, v] of model.live) seen.set(k, [v.id, v.iteration]);
  return [...seen.values()].map(([id, it]) => nodeState(model, id, it));
}

/** Is the node running or waiting (its elapsed time still grows)? */
export const isActive = (status) => status === "running" || isWaiting(status);

/** Apply one event from the stream: node states, the run's status, the event list. */
export function applyEvent(model, e) {
  model.events.push(e);
  if (model.events.length > MAX_EVENTS) model.events.splice(0, model.events.length - MAX_EVENTS);
  const p = e.payload || {};
  if (e.node_id != null) applyNodeEvent(model, e, p);
  if (!model.run) return;
  if (e.type === "RunWaiting") model.run.status = p.status || model.run.status;
  else if (RUN_STATUS_OF_EVENT[e.type] && (e.run_id == null || e.run_id === model.runId)) model.run.status = RUN_STATUS_OF_EVENT[e.type];
}

function applyNodeEvent(model, e, p) {
  const key = nodeKey(e.node_id, e.iteration);
  const n = model.live.get(key) || { id: e.node_id, iteration: e.iteration || 0, status: null, attempt: null, started: null, ended: null, error: null };
  switch (e.type) {
    case "NodePending": n.status = "pending"; break;
    case "NodeStarted": Object.assign(n, { status: "running", attempt: e.attempt || n.attempt, started: e.ts_ms, ended: null, error: null }); break;
    case "NodeFinished": Object.assign(n, { status: "finished", ended: e.ts_ms, error: null, attempt: e.attempt || n.attempt }); break;
    case "NodeFailed": Object.assign(n, { status: p.will_retry ? RETRYING : "failed", ended: e.ts_ms, error: errorMessage(p.error) }); break;
    case "NodeRetrying": n.status = RETRYING; break;
    case "NodeSkipped": Object.assign(n, { status: "skipped", ended: n.ended || e.ts_ms }); break;
    case "NodeCancelled": Object.assign(n, { status: "cancelled", ended: e.ts_ms }); break;
    case "NodeWaiting": Object.assign(n, { status: p.status || n.status, started: e.ts_ms, ended: null }); break;
    case "AttemptAbandoned": Object.assign(n, { status: "pending", ended: e.ts_ms }); break;
    default: break;
  }
  if (n.status != null) model.live.set(key, n);
}

/** The label of a group row or box of the plan: "loop fix · pass 2 of max 5", "parallel · max 4". */
export function groupLabel(node) {
  const t = node.t;
  if (t === "loop") return `loop ${node.id || ""} · pass ${node.it ?? "?"}${node.max != null ? " of max " + node.max : ""}${node.done ? " · done" : ""}`;
  if (t === "parallel") return "parallel" + (node.limit ? ` · max ${node.limit}` : "");
  return node.id ? `${t} ${node.id}` : t;
}
