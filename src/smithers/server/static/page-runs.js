/* #/ — every run, newest first, filtered by status; refreshed every 2 s. The status filter's
 * choices are the server's run statuses (/v1/meta). */
import { api, describeError, enc, listOf } from "./api.js";
import { setNav } from "./chrome.js";
import { fill, h, keyedList, setText } from "./dom.js";
import { badge, fmtDur, fmtFull, fmtTime, runHref, statusLabel } from "./format.js";
import { refreshInbox } from "./inbox-feed.js";
import { isRunOver, meta, toneOf } from "./meta.js";

const POLL_MS = 2000;
const PAGE_SIZE = 50;

export function RunsPage(app, params) {
  let status = params.get("status") || "";
  let limit = PAGE_SIZE;
  let timer = null;
  let alive = true;

  const list = h("ul", { class: "runs", id: "runs" });
  const empty = h("p", { class: "empty", hidden: true });
  const more = h("button", { type: "button", hidden: true, onclick: () => { limit += PAGE_SIZE; load(); } }, "Show more");
  const updated = h("span", { class: "muted small" });
  const filters = h("div", { class: "filters", role: "toolbar", "aria-label": "filter by status" });
  const drawRuns = keyedList(list, { key: (r) => r.run_id, create: createRow, update: updateRow });

  fill(app,
    h("div", { class: "row" }, h("h1", null, "Runs"), h("span", { class: "spacer" }), updated),
    filters,
    h("section", { class: "panel" },
      h("div", { class: "run-row head", "aria-hidden": "true" }, ["Run", "Workflow", "Status", "Created", "Elapsed"].map((t) => h("span", null, t))),
      list, empty, h("div", { class: "row", style: "justify-content:center" }, more)));
  setNav("runs");

  function drawFilters() {
    const choices = [["", "All"], ...meta.runStatuses.map((s) => [s, statusLabel(s)])];
    fill(filters, choices.map(([value, label]) =>
      h("button", { type: "button", class: "chip" + (value === status ? " on" : ""), dataset: { filter: value || "all" },
        "aria-pressed": value === status ? "true" : "false",
        onclick: () => { status = value; history.replaceState(null, "", value ? `#/?status=${enc(value)}` : "#/"); drawFilters(); load(); } },
      label)));
  }

  function createRow(r) {
    const parts = {
      link: h("a", { href: runHref(r.run_id) }, r.run_id),
      workflow: h("span", { class: "wf" }),
      status: h("span", { class: "status" }),
      created: h("span", { class: "created" }),
      elapsed: h("span", { class: "elapsed", title: "elapsed" }),
    };
    const row = h("li", { class: "run-row", dataset: { run: r.run_id } },
      h("span", { class: "id mono" }, parts.link), parts.workflow, parts.status, parts.created, parts.elapsed);
    row.parts = parts;
    return row;
  }

  function updateRow(row, r) {
    const p = row.parts;
    if (row.dataset.status !== r.status) {
      row.dataset.status = r.status;
      row.dataset.tone = toneOf(r.status);
      fill(p.status, badge(r.status));
    }
    setText(p.workflow, r.workflow);
    setText(p.created, fmtTime(r.created_at_ms));
    p.created.title = fmtFull(r.created_at_ms);
    setText(p.elapsed, fmtDur((isRunOver(r.status) ? r.updated_at_ms : Date.now()) - r.created_at_ms));
  }

  async function load() {
    clearTimeout(timer);
    const query = new URLSearchParams({ limit: String(limit), offset: "0" });
    if (status) query.set("status", status);
    try {
      const data = await api("/v1/runs?" + query.toString());
      if (!alive) return;
      const runs = listOf(data, "runs");
      drawRuns(runs);
      empty.hidden = runs.length > 0;
      if (status) fill(empty, `No ${status} runs.`);
      else fill(empty, "No runs yet. Start one with ", h("code", null, "smithers up workflow.py"), ".");
      const total = data && typeof data.total === "number" ? data.total : null;
      more.hidden = total != null ? runs.length >= total : runs.length < limit;
      setText(updated, "updated " + fmtTime(Date.now()));
    } catch (e) {
      if (!alive || e.status === 401) return;
      setText(updated, "cannot refresh: " + describeError(e));
    }
    if (alive) timer = setTimeout(load, POLL_MS);
  }

  drawFilters();
  load();
  refreshInbox();
  return { unmount() { alive = false; clearTimeout(timer); } };
}
