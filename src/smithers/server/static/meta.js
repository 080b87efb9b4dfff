/* The server's status lists and event types (GET /v1/meta, from smithers.states): the dashboard
 * keeps no copy of its own. `loadMeta()` runs once before the first page is drawn. */
import { api } from "./api.js";

export const meta = {
  runStatuses: [],
  eventTypes: [],
  waitingRun: new Set(),
  endedRun: new Set(),
  waitingNode: new Set(),
  terminalNode: new Set(),
};

export async function loadMeta() {
  const data = await api("/v1/meta", { quiet: true });
  meta.runStatuses = data.run_statuses;
  meta.eventTypes = data.event_types;
  meta.waitingRun = new Set(data.waiting_run_statuses);
  meta.endedRun = new Set(data.ended_run_statuses);
  meta.waitingNode = new Set(data.waiting_node_statuses);
  meta.terminalNode = new Set(data.terminal_node_statuses);
  return meta;
}

/** Is this run over (finished, failed, cancelled, continued)? Its stream then ends. */
export const isRunOver = (status) => meta.endedRun.has(status);

export const isWaiting = (status) => meta.waitingRun.has(status) || meta.waitingNode.has(status);

/** The colour family of a status: every waiting status shares one; the rest are their own. */
export function toneOf(status) {
  return isWaiting(status) ? "waiting" : status || "unknown";
}
