/* The node detail panel of a run page: every iteration and attempt with errors, the output,
 * token usage, the scores and the agent transcript (GET /v1/runs/{id}/nodes/{node}). */
import { api, describeError, enc } from "./api.js";
import { add, fill, h } from "./dom.js";
import { badge, errorMessage, fmtDur, fmtFull, fmtTime, json } from "./format.js";
import { attemptDiffs } from "./attempt-diff.js";
import { approvalCard } from "./forms.js";
import { nodeState } from "./run-model.js";
import { transcriptItem, usageBox, usageOf } from "./transcript.js";

export function errorBlock(err, compact) {
  if (typeof err !== "object" || err === null) return h("div", { class: "error-text" }, String(err));
  return h("div", null,
    h("div", { class: "error-text" }, errorMessage(err), err.code ? h("span", { class: "muted small mono" }, ` (${err.code})`) : null),
    err.hint ? h("div", { class: "muted small" }, err.hint) : null,
    err.traceback ? h("details", null, h("summary", null, "traceback"), h("pre", null, err.traceback)) : null,
    !compact && err.details && Object.keys(err.details).length ? h("details", null, h("summary", null, "details"), json(err.details)) : null);
}

function attemptsTable(attempts) {
  const took = (a) => a.finished_at_ms ? fmtDur(a.finished_at_ms - a.started_at_ms) : a.status === "running" ? fmtDur(Date.now() - a.started_at_ms) : "";
  return h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
    h("thead", null, h("tr", null, ["#", "status", "started", "took", "error"].map((t) => h("th", null, t)))),
    h("tbody", null, attempts.map((a) => h("tr", { dataset: { attempt: a.attempt } },
      h("td", null, a.attempt),
      h("td", null, badge(a.status)),
      h("td", { title: fmtFull(a.started_at_ms) }, fmtTime(a.started_at_ms)),
      h("td", null, took(a)),
      h("td", null, a.error ? errorBlock(a.error, true) : ""))))));
}

/** What the node's scorers said (one row per iteration, attempt and scorer; an error instead of a value). */
function scoresTable(scores) {
  return h("div", { class: "table-wrap" }, h("table", { class: "attempts scores", id: "scores" },
    h("thead", null, h("tr", null, ["iteration", "attempt", "scorer", "value", "reason"].map((t) => h("th", null, t)))),
    h("tbody", null, scores.map((s) => h("tr", { dataset: { scorer: s.scorer } },
      h("td", null, s.iteration),
      h("td", null, s.attempt),
      h("td", { class: "mono" }, s.scorer),
      h("td", null, s.value == null ? badge("failed") : s.value.toFixed(3)),
      h("td", { class: s.error ? "error-text" : "" }, s.error || s.reason || ""))))));
}

function iterationBox(model, node, it, several) {
  const box = h("div", { class: "iteration", dataset: { iteration: it.iteration } },
    h("h3", null, several || it.iteration ? `iteration ${it.iteration}` : "status"),
    h("div", { class: "row" }, badge(nodeState(model, node.id, it.iteration).status),
      it.updated_at_ms ? h("span", { class: "muted small" }, "updated " + fmtTime(it.updated_at_ms)) : null,
      it.retry_at_ms ? h("span", { class: "muted small" }, "retry at " + fmtTime(it.retry_at_ms)) : null));
  if (it.error) box.append(errorBlock(it.error));
  const attempts = it.attempts || [];
  if (attempts.length) {
    box.append(h("h3", null, "attempts"), attemptsTable(attempts));
    const beat = attempts.filter((a) => a.heartbeat != null).pop();
    if (beat) {
      const when = beat.heartbeat_at_ms ? ", " + fmtTime(beat.heartbeat_at_ms) : "";
      box.append(h("details", null, h("summary", null, `last heartbeat (attempt ${beat.attempt}${when})`), json(beat.heartbeat)));
    }
  }
  const diffs = attemptDiffs(model.runId, node.id, it.iteration, attempts);
  if (diffs) box.append(diffs);
  if (it.output != null) box.append(h("h3", null, "output"), json(it.output));
  return box;
}

/** The panel; `load(scroll)` fetches the selected node and draws it. */
export function createNodeDetail(model, { onClose, afterDecision }) {
  const el = h("section", { class: "panel", id: "node-detail", hidden: true });
  let loads = 0; // only the latest load draws

  function header(id, status) {
    return h("div", { class: "detail-head" },
      h("span", { class: "id mono" }, id),
      status ? badge(status) : null,
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "link", "aria-label": "close node detail", onclick: onClose }, "close ×"));
  }

  function draw(node) {
    const iterations = (node.iterations || []).slice().sort((a, b) => b.iteration - a.iteration);
    const latest = iterations[0];
    const facts = [["label", node.label], ["kind", node.kind], ["output table", node.output_table, "mono"], ["mode", node.mode]];
    fill(el,
      header(node.id, latest ? nodeState(model, node.id, latest.iteration).status : null),
      h("dl", { class: "kv" }, facts.filter(([, v]) => v).map(([k, v, cls]) => [h("dt", null, k), h("dd", { class: cls }, v)])),
      model.inbox.filter((i) => i.node_id === node.id && i.kind === "approval")
        .map((item) => h("div", { class: "panel waiting", style: "margin:8px 0" }, approvalCard(item, afterDecision))),
      iterations.map((it) => iterationBox(model, node, it, iterations.length > 1)),
      iterations.length ? null : h("p", { class: "muted" }, "Not started yet."));
    const transcript = Array.isArray(node.transcript) ? node.transcript : [];
    const usage = usageOf(transcript);
    if (usage) add(el, [h("h3", null, "token usage"), usageBox(usage)]);
    const scores = Array.isArray(node.scores) ? node.scores : [];
    if (scores.length) add(el, [h("h3", null, "scores"), scoresTable(scores)]);
    if (transcript.length) add(el, [h("h3", null, "agent transcript"), h("ol", { class: "transcript", id: "transcript" }, transcript.map(transcriptItem))]);
  }

  async function load(scroll) {
    const id = model.selected;
    el.hidden = id == null;
    if (id == null) return;
    const mine = ++loads;
    if (scroll) fill(el, h("p", { class: "muted" }, "Loading ", h("span", { class: "mono" }, id), "…"));
    try {
      const node = await api(`/v1/runs/${enc(model.runId)}/nodes/${enc(id)}`);
      if (mine === loads) draw(node);
    } catch (e) {
      if (mine === loads) fill(el, header(id), h("p", { class: "error-text" }, describeError(e)));
    }
    if (scroll && window.innerWidth < 960) el.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  return { el, load };
}
