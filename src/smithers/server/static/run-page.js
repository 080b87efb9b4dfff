/* #/runs/ID[/nodes/NODE] — one run: head, what it waits for, and three tabs (the live node tree
 * with a node's detail, the plan, the events). It follows the run's event stream (sse.js) and
 * re-reads the run detail now and then for what events do not carry (owner liveness, errors). */
import { api, describeError, enc } from "./api.js";
import { setConn, setNav, toast } from "./chrome.js";
import { coalescer, fill, h, perFrame } from "./dom.js";
import { runHref } from "./format.js";
import { itemForm, itemsKey } from "./forms.js";
import { onInbox, refreshInbox } from "./inbox-feed.js";
import { isRunOver } from "./meta.js";
import { createNodeDetail } from "./run-detail.js";
import { createEventList } from "./run-events.js";
import { createRunHead } from "./run-head.js";
import { applyEvent, createRunModel, setRunDetail } from "./run-model.js";
import { createPlan, latestFrame } from "./run-plan.js";
import { createTimeline } from "./run-timeline.js";
import { createNodeTree } from "./run-tree.js";
import { followRun } from "./sse.js";

const REFRESH_MS = 5000;
const TABS = [["nodes", "Nodes"], ["plan", "Plan"], ["timeline", "Timeline"], ["events", "Events"]];
const WAIT_EVENT_PREFIXES = ["Approval", "Signal", "Human", "NodeWaiting", "RunWaiting"];

export function RunPage(app, runId, nodeId) {
  const model = createRunModel(runId, nodeId);
  let alive = true;
  let tab = "nodes";
  let stream = null;
  let waitKey = null;
  const soon = coalescer();

  const head = createRunHead(model, { changed: afterAction });
  const tree = createNodeTree(model, { onSelect: select });
  const detail = createNodeDetail(model, { onClose: () => select(null), afterDecision: afterAction });
  const plan = createPlan(model, { onSelect: select });
  const events = createEventList(model, { onSelect: select });
  const timeline = createTimeline(model);
  const waiting = h("section", { class: "panel waiting", id: "waiting", hidden: true });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const nodesView = h("div", { class: "split", id: "nodes-view" }, h("section", { class: "panel" }, tree.el), detail.el);
  const drawTree = perFrame(() => { if (alive) tree.draw(); });

  fill(app, h("div", { class: "crumbs" }, h("a", { href: "#/" }, "← Runs")), head.el, waiting, tabs, nodesView, plan.el, timeline.el, events.el);
  setNav("runs");

  // tabs ---------------------------------------------------------------------------------
  function drawTabs() {
    fill(tabs, TABS.map(([key, label]) => h("button", { type: "button", role: "tab", class: tab === key ? "on" : "",
      "aria-selected": String(tab === key), dataset: { tab: key }, onclick: () => showTab(key) },
    label, key === "events" && model.events.length ? h("span", { class: "muted small" }, ` ${model.events.length}`) : null)));
  }

  function showTab(key) {
    tab = key;
    drawTabs();
    nodesView.hidden = key !== "nodes";
    plan.el.hidden = key !== "plan";
    events.el.hidden = key !== "events";
    timeline.el.hidden = key !== "timeline";
    if (key === "plan") plan.show();
    if (key === "timeline") timeline.show();
    if (key === "events") events.draw();
  }

  // the selected node ------------------------------------------------------------------
  function select(id) {
    if (id === model.selected) { detail.load(); return; }
    model.selected = id;
    history.replaceState(null, "", runHref(runId, id ?? undefined));
    nodesView.classList.toggle("with-detail", id != null);
    tree.draw();
    if (id != null && tab !== "nodes") showTab("nodes");
    detail.load(true);
  }

  // what the run waits for ----------------------------------------------------------------
  function drawWaiting(items) {
    model.inbox = items.filter((i) => i.run_id === runId);
    if (itemsKey(model.inbox) === waitKey) return; // never wipe a note being typed
    waitKey = itemsKey(model.inbox);
    waiting.hidden = !model.inbox.length;
    fill(waiting, model.inbox.length ? h("h2", null, "Waiting for you") : null, model.inbox.map((item) => itemForm(item, afterAction)));
  }

  function afterAction() {
    waitKey = null;
    refresh().then(follow);
    refreshInbox();
  }

  // the run detail, the plan tree --------------------------------------------------------
  async function refresh() {
    try {
      const run = await api(`/v1/runs/${enc(runId)}`);
      if (!alive) return;
      setRunDetail(model, run);
      head.draw();
      timeline.drawLineage();
      drawTree();
    } catch (e) {
      if (!alive || e.status === 401) return;
      if (e.status === 404) {
        fill(head.el, h("h1", { class: "mono" }, runId), h("p", { class: "error-text" }, describeError(e)));
        unmount();
        return;
      }
      toast(describeError(e), "error");
    }
  }

  async function loadTree() {
    try {
      const frame = await latestFrame(model, true); // fresh: step frames (one per finished task) come without a FrameCommitted event
      if (!alive || !frame) return;
      model.tree = frame.tree ?? null;
      if (typeof frame.frames === "number") model.frames = Math.max(model.frames, frame.frames);
      drawTree();
      plan.follow(frame);
    } catch (e) {
      if (e.status !== 401) toast(describeError(e), "error");
    }
  }

  // the event stream --------------------------------------------------------------------
  function onEvent(e) {
    applyEvent(model, e);
    events.append(e);
    const p = e.payload || {};
    if (e.node_id != null) {
      drawTree();
      if (model.selected === e.node_id) soon.later("detail", () => detail.load(), 300);
      soon.later("plan", plan.redrawLive, 200);
      soon.later("timeline", timeline.changed, 300);
    }
    if (e.type.startsWith("Run")) { head.draw(); soon.later("run", refresh, 150); }
    if (e.type === "FrameCommitted") {
      if (typeof p.frame === "number") model.frames = Math.max(model.frames, p.frame + 1);
      soon.later("frames", loadTree, 150);
    }
    if (WAIT_EVENT_PREFIXES.some((prefix) => e.type.startsWith(prefix))) soon.later("inbox", refreshInbox, 150);
    if (tab === "events") drawTabs();
  }

  /** Follow the stream unless it is open, or it ended and the run is still over (a resumed run
   * is followed again). A run that is over when the page opens still streams its events once. */
  function follow() {
    if (!alive || (stream && stream.open) || (stream && model.run && isRunOver(model.run.status))) return;
    stream = followRun(runId, {
      afterSeq: stream ? stream.lastSeq : 0,
      onEvent,
      onEnd: (end) => { if (model.run && end.status) { model.run.status = end.status; head.draw(); } refresh(); },
      onState: (state) => setConn(state === "live" ? "live" : state === "down" ? "down" : "ok"),
      onLost: refresh, // an error status: a 401 shows the sign-in form, a 404 says the run is gone
    });
  }

  // start, and keep time --------------------------------------------------------------------
  const tick = setInterval(() => {
    if (tree.hasActive()) drawTree();
    head.tick();
  }, 1000);
  const poll = setInterval(() => {
    if (!alive || document.hidden || (model.run && isRunOver(model.run.status))) return;
    refresh();
    follow();
  }, REFRESH_MS);
  const stopInbox = onInbox((items) => { if (alive) drawWaiting(items); });

  head.draw();
  tree.draw();
  drawTabs();
  showTab("nodes");
  nodesView.classList.toggle("with-detail", nodeId != null);
  (async () => {
    await Promise.all([refresh(), refreshInbox()]);
    await loadTree();
    if (!alive) return;
    if (model.selected != null) detail.load(true);
    follow();
  })();

  function unmount() {
    alive = false;
    if (stream) stream.close();
    clearInterval(tick);
    clearInterval(poll);
    soon.cancel();
    stopInbox();
    setConn("ok");
  }

  return {
    runId,
    select(id) { if (id !== model.selected) select(id); },
    unmount,
  };
}
