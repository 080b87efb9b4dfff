/* The plan tab of a run page: the plan as of any frame (GET /v1/runs/{id}/frames?frame=N), with
 * a frame slider. The latest frame shows live statuses; an earlier one the statuses it had then. */
import { api, describeError, enc } from "./api.js";
import { fill, h } from "./dom.js";
import { isRunOver, toneOf } from "./meta.js";
import { groupLabel, nodeState } from "./run-model.js";

/** How many frames a frames listing names. */
export function frameCount(listing) {
  if (listing == null) return 0;
  if (typeof listing.frames === "number") return listing.frames;
  return Array.isArray(listing.frames) ? listing.frames.length : 0;
}

/** The latest frame of a run (null before its first render); `fresh`: ask how many there are. */
export async function latestFrame(model, fresh = false) {
  const count = (!fresh && model.frames) || frameCount(await api(`/v1/runs/${enc(model.runId)}/frames`, { quiet: true }));
  if (!count) return null;
  return api(`/v1/runs/${enc(model.runId)}/frames?frame=${count - 1}`, { quiet: true });
}

export function createPlan(model, { onSelect }) {
  const bar = h("div", { class: "frame-bar" });
  const box = h("div", { class: "plan", id: "plan" });
  const el = h("section", { class: "panel", id: "plan-view", hidden: true }, bar, box);
  const state = { follow: true, data: null };

  async function load(frame) {
    try {
      const data = frame == null ? await latestFrame(model, true) : await api(`/v1/runs/${enc(model.runId)}/frames?frame=${frame}`, { quiet: true });
      if (data) draw(data);
      else { fill(box, h("p", { class: "muted" }, "This run has not rendered a plan yet.")); fill(bar); }
    } catch (e) {
      fill(box, h("p", { class: "error-text" }, describeError(e)));
    }
  }

  function draw(data) {
    const count = typeof data.frames === "number" ? data.frames : model.frames;
    const frame = typeof data.frame === "number" ? data.frame : count - 1;
    model.frames = Math.max(model.frames, count);
    state.data = data;
    const last = frame >= count - 1;
    const go = (n) => { state.follow = n >= count - 1; load(state.follow ? null : n); };
    const slider = h("input", { type: "range", min: "0", max: String(Math.max(0, count - 1)), value: String(frame), "aria-label": "frame",
      onchange: (e) => go(Number(e.target.value)) });
    fill(bar,
      h("button", { type: "button", disabled: frame <= 0, "aria-label": "previous frame", onclick: () => go(frame - 1) }, "◀"),
      h("span", { class: "mono", id: "frame-label" }, `frame ${frame}`, h("span", { class: "muted" }, ` (${frame + 1} of ${count})`)),
      h("button", { type: "button", disabled: last, "aria-label": "next frame", onclick: () => go(frame + 1) }, "▶"),
      count > 1 ? slider : h("span", { class: "spacer" }),
      last ? h("span", { class: "muted small" }, model.run && !isRunOver(model.run.status) ? "latest · live" : "latest")
        : h("button", { type: "button", class: "chip", onclick: () => go(count - 1) }, "latest"));
    fill(box, data.tree ? planNode(data.tree, last, true) : h("p", { class: "muted" }, "(empty plan)"));
  }

  function taskBox(node, last) {
    const status = last ? nodeState(model, node.id, node.it || 0, node.status).status : node.status || "pending";
    const open = () => onSelect(node.id);
    return h("div", { class: "g-task", dataset: { status, tone: toneOf(status), node: node.id }, tabindex: "0", role: "button", title: `${node.id} — ${status}`,
      onclick: open, onkeydown: (e) => { if (e.key === "Enter") open(); } },
    h("div", { class: "g-id" }, node.id, node.it ? h("span", { class: "muted" }, ` #${node.it}`) : null),
    h("div", { class: "g-sub" }, [node.mode, node.out].filter(Boolean).join(" → ")),
    h("div", { class: "g-st" }, status));
  }

  function planNode(node, last, root) {
    if (node.t === "task") {
      const box = taskBox(node, last);
      return node.children && node.children.length ? h("div", { class: "g-box g-seq" }, box, node.children.map((c) => planNode(c, last))) : box;
    }
    const kids = (node.children || []).map((c) => planNode(c, last));
    if (node.t === "parallel") {
      return h("div", { class: "g-box", dataset: { kind: node.t } }, h("div", { class: "g-label" }, groupLabel(node)), h("div", { class: "g-par" }, kids));
    }
    const body = kids.flatMap((k, i) => i ? [h("div", { class: "g-arrow", "aria-hidden": "true" }, "↓"), k] : [k]);
    if (root && node.t === "workflow") return h("div", { class: "g-seq g-root" }, body);
    const cls = node.t === "loop" ? "g-box g-seq g-loop" : "g-box g-seq";
    return h("div", { class: cls, dataset: { kind: node.t } }, h("div", { class: "g-label" }, groupLabel(node)), body.length ? body : h("div", { class: "muted small" }, "(empty)"));
  }

  return {
    el,
    /** Show the plan: the latest frame when following, else the frame shown. */
    show: () => load(state.follow || !state.data ? null : state.data.frame),
    /** A node changed: redraw the latest frame with live statuses. */
    redrawLive: () => { if (!el.hidden && state.follow && state.data) draw(state.data); },
    /** A new frame was committed: follow it. */
    follow: (data) => { if (!el.hidden && state.follow) draw(data); },
  };
}
