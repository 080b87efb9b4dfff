/* The timeline tab of a run page: the run's frames (one per step and one per plan change, GET
 * /v1/runs/{id}/timeline), each with a "fork here" button (POST /v1/runs/{id}/fork, then the new
 * run opens), the runs forked from it (forks of forks nested), and the run it was forked from. */
import { api, describeError, enc } from "./api.js";
import { toast } from "./chrome.js";
import { fill, h } from "./dom.js";
import { badge, fmtTime, runHref } from "./format.js";
import { toneOf } from "./meta.js";

const SHOWN = 400; // frames drawn at most (the newest); a long run's older frames stay one click away

/** "build[0] finished (attempt 2)" — what one step frame recorded. */
export function stepText(step) {
  const attempt = step.attempt ? ` (attempt ${step.attempt})` : "";
  return `${step.node_id}${step.iteration ? ` #${step.iteration}` : ""} ${step.step}${attempt}`;
}

export function createTimeline(model) {
  const lineage = h("p", { class: "muted", id: "timeline-lineage", hidden: true });
  const forksBox = h("div", { id: "timeline-forks" });
  const list = h("ol", { class: "timeline", id: "timeline-frames" });
  const more = h("button", { type: "button", class: "chip", hidden: true, onclick: () => { state.all = true; draw(); } }, "show every frame");
  const el = h("section", { class: "panel", id: "timeline-view", hidden: true },
    lineage, h("h2", null, "Frames"), more, list, h("h2", null, "Forks"), forksBox);
  const state = { data: null, all: false, busy: false };

  async function load() {
    try {
      state.data = await api(`/v1/runs/${enc(model.runId)}/timeline?tree=true`, { quiet: true });
      draw();
    } catch (e) {
      fill(list, h("li", { class: "error-text" }, describeError(e)));
    }
  }

  function drawLineage() {
    const run = model.run;
    lineage.hidden = !(run && run.forked_from);
    if (!lineage.hidden) {
      fill(lineage, "Forked from ", h("a", { class: "mono", href: runHref(run.forked_from) }, run.forked_from), ` at frame ${run.fork_frame}`);
    }
  }

  function draw() {
    drawLineage();
    const data = state.data;
    if (!data) return;
    const frames = state.all ? data.frames : data.frames.slice(-SHOWN);
    more.hidden = frames.length === data.frames.length;
    fill(list, frames.length ? frames.map(frameRow) : h("li", { class: "muted" }, "This run has not rendered a plan yet."));
    fill(forksBox, data.forks.length ? forkList(data.forks) : h("p", { class: "muted" }, "No run was forked from this one."));
  }

  function frameRow(frame) {
    const step = frame.steps.length === 1 ? frame.steps[0] : null;
    const status = step ? (step.step === "reset" ? "pending" : step.step === "retrying" ? "failed" : step.step) : null;
    const what = frame.kind === "plan" ? h("span", { class: "muted" }, "plan changed")
      : frame.steps.map((s, i) => h("span", { class: "tl-step", dataset: { node: s.node_id } }, i ? ", " : "", stepText(s)));
    return h("li", { class: "tl-frame", dataset: { frame: frame.frame_no, kind: frame.kind, tone: status ? toneOf(status) : null } },
      h("span", { class: "mono tl-no" }, `#${frame.frame_no}`),
      h("span", { class: "muted small tl-ts" }, fmtTime(frame.created_at_ms)),
      h("span", { class: "tl-what" }, what),
      frame.snapshot ? h("span", { class: "mono small muted tl-snap", title: frame.snapshot }, frame.snapshot.slice(0, 10)) : null,
      h("button", { type: "button", class: "chip tl-fork", title: `a new run with this run's state as of frame ${frame.frame_no}`,
        onclick: () => fork(frame.frame_no) }, "fork here"));
  }

  function forkList(forks) {
    return h("ul", { class: "tl-forks" }, forks.map((f) => h("li", { class: "tl-fork-row", dataset: { run: f.run_id } },
      h("a", { class: "mono", href: runHref(f.run_id) }, f.run_id), " ", badge(f.status),
      h("span", { class: "muted small" }, ` at frame ${f.frame_no}`, f.label ? ` · ${f.label}` : ""),
      f.forks && f.forks.length ? forkList(f.forks) : null)));
  }

  async function fork(frameNo) {
    if (state.busy) return;
    state.busy = true;
    try {
      const made = await api(`/v1/runs/${enc(model.runId)}/fork`, { method: "POST", body: { frame_no: frameNo } });
      toast(`forked at frame ${frameNo} as ${made.run_id} (${made.status})`, "ok");
      location.hash = runHref(made.run_id);
    } catch (e) {
      toast(describeError(e), "error");
    } finally {
      state.busy = false;
    }
  }

  return {
    el,
    /** Show the tab: read the timeline afresh. */
    show: load,
    /** Something changed (a step, a fork): re-read when the tab is open. */
    changed: () => { if (!el.hidden) load(); },
    /** The run detail arrived: its lineage line. */
    drawLineage,
  };
}
