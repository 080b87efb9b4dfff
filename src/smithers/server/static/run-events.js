/* The events tab of a run page: every event as it arrives, with a filter by type or node. */
import { fill, h, setText } from "./dom.js";
import { errorMessage, fmtFull, fmtNum, fmtTime, runHref, short } from "./format.js";
import { MAX_EVENTS } from "./run-model.js";

const SHOWN_EVENTS = 1500;
const BAD_EVENTS = new Set(["NodeFailed", "RunFailed", "ApprovalDenied", "HumanAnswerRejected"]);
const KIND_PREFIXES = [
  ["node", ["Node", "Attempt", "Loop", "FrameCommitted"]],
  ["run", ["Run"]],
  ["human", ["Approval", "Human", "Signal", "Timer"]],
  ["agent", ["Agent", "Token", "Tool"]],
];

/** The colour family of an event row. */
function eventKind(type) {
  if (BAD_EVENTS.has(type)) return "bad";
  for (const [kind, prefixes] of KIND_PREFIXES) if (prefixes.some((p) => type.startsWith(p))) return kind;
  return "other";
}

const SUMMARIES = {
  FrameCommitted: (p) => `frame ${p.frame} · ${p.tasks} tasks`,
  NodeRetrying: (p) => p.retry_at_ms ? `retry at ${fmtTime(p.retry_at_ms)}` : "",
  NodeWaiting: (p) => p.status || "",
  NodeCached: (p) => `from run ${p.from_run_id || ""}`,
  RunWaiting: (p) => (p.waiting_for || []).map((w) => `${w.kind || w.status} ${w.node_id}[${w.iteration}]`).join(", "),
  RunStarted: (p) => p.resumed ? "resumed" + (p.previous_status ? ` (was ${p.previous_status})` : "") : p.workflow ? `workflow ${p.workflow}` : "",
  ApprovalRequested: (p) => (p.request && p.request.title) || "",
  ApprovalDecided: (p) => `${p.approved ? "approved" : "denied"}${p.by ? " by " + p.by : ""}${p.note ? " — " + p.note : ""}`,
  SignalSent: (p) => `${p.signal}${p.by ? " by " + p.by : ""}`,
  AgentEvent: (p) => p.kind === "text" ? "text: " + short((p.data || {}).text || "", 120) : p.kind === "tool_use" ? `tool ${(p.data || {}).name || ""}` : p.kind || "",
  AgentTurn: (p) => `turn ${p.turn} → ${p.agent || ""}`,
  AgentReply: (p) => `reply (${p.outcome || ""})`,
  TokenUsageReported: (p) => `in ${fmtNum(p.input_tokens)} · out ${fmtNum(p.output_tokens)}`,
  LoopIteration: (p) => `${p.loop_id || ""} pass ${p.loop_iteration ?? ""}`,
  RunContinuedAsNew: (p) => p.new_run_id ? `as ${p.new_run_id}` : "",
};

/** One line about an event's payload. */
export function eventSummary(e) {
  const p = e.payload || {};
  if (p.error && typeof p.error === "object") return errorMessage(p.error) + (p.will_retry ? " (will retry)" : "");
  if (SUMMARIES[e.type]) return SUMMARIES[e.type](p);
  const rest = Object.fromEntries(Object.entries(p).filter(([k, v]) => v != null && k !== "status"));
  return Object.keys(rest).length ? short(rest, 140) : "";
}

export function createEventList(model, { onSelect }) {
  const list = h("ol", { class: "events", id: "events" });
  const filter = h("input", { type: "search", placeholder: "filter: type or node", "aria-label": "filter events" });
  const count = h("span", { class: "muted small", id: "events-count" });
  const scroller = h("div", { class: "events-box" }, list);
  const el = h("section", { class: "panel", id: "events-view", hidden: true },
    h("div", { class: "row", style: "margin-bottom:8px" }, filter, count), scroller);

  function row(e) {
    const where = e.node_id != null ? `${e.node_id}[${e.iteration ?? 0}]` + (e.attempt ? ` #${e.attempt}` : "") : "";
    const open = (ev) => { ev.preventDefault(); onSelect(e.node_id); };
    return h("li", { class: "ev", dataset: { kind: eventKind(e.type || ""), seq: e.seq, type: e.type } },
      h("span", { class: "seq" }, e.seq),
      h("span", { class: "ts", title: fmtFull(e.ts_ms) }, fmtTime(e.ts_ms)),
      h("span", { class: "type" }, e.type),
      h("span", { class: "what" },
        where ? [h("a", { href: runHref(model.runId, e.node_id), class: "mono", onclick: open }, where), " "] : null,
        h("span", { class: "muted" }, eventSummary(e))));
  }

  function matches(e) {
    const q = filter.value.trim().toLowerCase();
    return !q || (e.type || "").toLowerCase().includes(q) || String(e.node_id || "").toLowerCase().includes(q);
  }

  function drawCount() {
    setText(count, `${model.events.length} events` + (model.events.length >= MAX_EVENTS ? " (oldest dropped)" : ""));
  }

  /** Redraw the whole list (on showing the tab, on a new filter). */
  function draw() {
    fill(list, model.events.filter(matches).slice(-SHOWN_EVENTS).map(row));
    drawCount();
    scroller.scrollTop = scroller.scrollHeight;
  }
  filter.addEventListener("input", draw);

  /** Add the row of a new event (only while the tab shows; showing it redraws). */
  function append(e) {
    if (el.hidden || !matches(e)) return;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    list.append(row(e));
    while (list.childElementCount > SHOWN_EVENTS) list.firstElementChild.remove();
    drawCount();
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  return { el, draw, append };
}
