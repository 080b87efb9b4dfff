/* The head of a run page: id, status, workflow, times, progress, error, input, and the Cancel
 * (two clicks) and Resume buttons. */
import { api, describeError, enc } from "./api.js";
import { toast } from "./chrome.js";
import { fill, h, setText } from "./dom.js";
import { badge, errorMessage, fmtDur, fmtFull, fmtTime, json, runHref } from "./format.js";
import { signalForm } from "./forms.js";
import { isRunOver, toneOf } from "./meta.js";
import { allNodes } from "./run-model.js";

const CONFIRM_MS = 4000;

/** A run nobody runs can be resumed: failed, cancelled, or not over and without a live owner. */
const resumable = (run) => run.status === "failed" || run.status === "cancelled" || (!isRunOver(run.status) && run.owner_alive === false);

export function createRunHead(model, { changed }) {
  const main = h("div");
  const input = h("details", { class: "run-input", hidden: true }, h("summary", null, "input"));
  const signal = h("details", { class: "signal-box", hidden: true }, h("summary", null, "send a signal"), signalForm(model.runId, null, changed));
  const el = h("section", { class: "panel", id: "run-head" }, main, input, signal);
  let elapsed = null;
  let cancelArmed = false;

  async function act(button, path, body, said) {
    button.disabled = true;
    try {
      toast(said(await api(`/v1/runs/${enc(model.runId)}/${path}`, { method: "POST", body })));
    } catch (e) {
      toast(describeError(e), "error");
    }
    changed();
  }

  function cancelButton() {
    const button = h("button", { type: "button", class: "danger" + (cancelArmed ? " confirm" : ""), dataset: { action: "cancel" } },
      cancelArmed ? "Confirm cancel" : "Cancel run");
    button.addEventListener("click", () => {
      if (!cancelArmed) { // two clicks: a stray tap cancels nothing
        cancelArmed = true;
        draw();
        setTimeout(() => { if (cancelArmed) { cancelArmed = false; draw(); } }, CONFIRM_MS);
        return;
      }
      cancelArmed = false;
      act(button, "cancel", undefined, (res) => res && res.status === "cancelling" ? "Cancelling: the run stops within a second" : "Run cancelled");
    });
    return button;
  }

  function resumeButton() {
    const button = h("button", { type: "button", class: "primary", dataset: { action: "resume" } }, "Resume");
    button.addEventListener("click", () => act(button, "resume", {}, () => "Resuming the run"));
    return button;
  }

  function progress() {
    const counts = {};
    for (const n of allNodes(model)) counts[n.status] = (counts[n.status] || 0) + 1;
    return Object.entries(counts).sort().map(([s, n]) => h("span", { dataset: { status: s, tone: toneOf(s) } }, h("span", { class: "dot" }), ` ${n} ${s}`));
  }

  function elapsedMs(r) {
    const end = isRunOver(r.status) ? (r.finished_at_ms || r.updated_at_ms) : Date.now();
    return r.created_at_ms && end ? end - r.created_at_ms : null;
  }

  function draw() {
    const r = model.run;
    if (!r) { fill(main, h("h1", { class: "mono" }, model.runId), h("p", { class: "muted" }, "Loading…")); return; }
    const over = isRunOver(r.status);
    const link = (label, id) => id ? h("span", null, label + " ", h("a", { class: "mono", href: runHref(id) }, id)) : null;
    elapsed = h("b", null, fmtDur(elapsedMs(r)));
    const error = errorMessage(r.error);
    fill(main,
      h("div", { class: "run-head" },
        h("div", { class: "title" },
          h("div", { class: "row" }, h("h1", { class: "mono", id: "run-id" }, r.run_id || model.runId),
            h("span", { id: "run-status", dataset: { status: r.status } }, badge(r.status))),
          h("div", { class: "meta" },
            h("span", null, "workflow ", h("b", null, r.workflow || "?")),
            h("span", { title: fmtFull(r.created_at_ms) }, "started ", h("b", null, fmtTime(r.created_at_ms))),
            r.created_at_ms ? h("span", null, over ? "took " : "elapsed ", elapsed) : null,
            link("continued as", r.continued_to),
            link("continues", r.continued_from),
            r.triggered_by ? h("span", { id: "run-trigger" }, "triggered by ", h("b", { class: "mono" }, r.triggered_by)) : null),
          h("div", { class: "meta small" }, progress())),
        h("div", { class: "actions" }, over ? null : cancelButton(), resumable(r) ? resumeButton() : null)),
      error ? h("div", { class: "run-error" }, error) : null);
    if (input.hidden && r.input && Object.keys(r.input).length) {
      input.append(json(r.input));
      input.hidden = false;
    }
    signal.hidden = over;
  }

  /** Once a second: the elapsed time of a run still going. */
  function tick() {
    if (model.run && !isRunOver(model.run.status) && elapsed) setText(elapsed, fmtDur(elapsedMs(model.run)));
  }

  return { el, draw, tick };
}
