/* The live node tree of a run page: one row per task of the latest plan (groups as headings),
 * then any node the plan no longer shows. Rows are kept (keyedList) and only their text and
 * `data-status` change as events arrive. */
import { h, keyedList, setText } from "./dom.js";
import { fmtDur } from "./format.js";
import { isWaiting, toneOf } from "./meta.js";
import { RETRYING, groupLabel, isActive, nodeKey, nodeState } from "./run-model.js";

/** The rows to show: `{kind: "task", key, depth, id, it, planStatus}` or `{kind: "group", key, depth, label}`. */
function layoutOf(model) {
  const rows = [];
  const seen = new Set();
  function walk(node, depth) {
    if (!node) return;
    if (node.t === "task") {
      const key = nodeKey(node.id, node.it || 0);
      rows.push({ kind: "task", key: "t:" + key, depth, id: node.id, it: node.it || 0, planStatus: node.status });
      seen.add(key);
      for (const c of node.children || []) walk(c, depth + 1);
      return;
    }
    const isRoot = node.t === "workflow" && depth === 0;
    if (!isRoot) rows.push({ kind: "group", key: `g:${node.k ?? rows.length}:${groupLabel(node)}`, depth, label: groupLabel(node) });
    for (const c of node.children || []) walk(c, isRoot ? 0 : depth + 1);
  }
  walk(model.tree, 0);
  const rest = [];
  for (const [k, v] of [...model.detailNodes, ...model.live]) {
    if (!seen.has(k)) { seen.add(k); rest.push(v); }
  }
  if (rest.length && rows.length) rows.push({ kind: "group", key: "g:rest", depth: 0, label: "earlier iterations and other nodes" });
  const depth = rows.length && model.tree ? 1 : 0;
  for (const v of rest) rows.push({ kind: "task", key: "t:" + nodeKey(v.id, v.iteration), depth, id: v.id, it: v.iteration });
  return rows;
}

export function createNodeTree(model, { onSelect }) {
  const el = h("ul", { class: "tree", id: "tree" });
  const empty = h("li", { class: "empty" });

  function createRow(row) {
    if (row.kind === "group") return h("li", { class: "tree-row group" }, row.label);
    const parts = {
      status: h("span", { class: "status-text" }),
      iter: h("span", { class: "iter", title: "iteration" }),
      attempt: h("span", { class: "attempt", title: "attempt" }),
      elapsed: h("span", { class: "elapsed", title: "elapsed" }),
      err: h("span", { class: "err" }),
    };
    const open = () => onSelect(row.id);
    const li = h("li", { class: "tree-row task", tabindex: "0", role: "button", dataset: { node: row.id, iteration: row.it },
      onclick: open, onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
    h("span", { class: "dot" }), h("span", { class: "name" }, row.id), parts.status,
    h("span", { class: "facts" }, parts.iter, parts.attempt, parts.elapsed), parts.err);
    li.parts = parts;
    return li;
  }

  function updateRow(li, row) {
    if (li.style.getPropertyValue("--depth") !== String(row.depth)) li.style.setProperty("--depth", String(row.depth)); // a node moves when the plan arrives
    if (row.kind === "group") return;
    const st = nodeState(model, row.id, row.it, row.planStatus);
    const p = li.parts;
    if (li.dataset.status !== st.status) {
      li.dataset.status = st.status;
      li.dataset.tone = toneOf(st.status);
    }
    li.classList.toggle("selected", model.selected === row.id);
    setText(p.status, st.status);
    setText(p.iter, st.iteration ? `iter ${st.iteration}` : "");
    setText(p.attempt, st.attempt && st.attempt > 0 ? `attempt ${st.attempt}` : "");
    const until = st.ended || (isActive(st.status) ? Date.now() : null);
    setText(p.elapsed, st.started && until ? (isWaiting(st.status) ? "waiting " : "") + fmtDur(until - st.started) : "");
    setText(p.err, st.status === "failed" || st.status === RETRYING ? st.error || "" : "");
    p.err.hidden = !p.err.textContent;
  }

  const drawRows = keyedList(el, { key: (row) => row.key, create: createRow, update: updateRow });

  return {
    el,
    draw() {
      const rows = layoutOf(model);
      if (!rows.length) {
        setText(empty, model.run ? "No tasks yet." : "Loading…");
        el.replaceChildren(empty);
      } else if (empty.parentNode) {
        empty.remove();
      }
      drawRows(rows);
    },
    /** Does any row still count time (running or waiting)? */
    hasActive: () => [...el.querySelectorAll(".tree-row.task")].some((li) => isActive(li.dataset.status)),
  };
}
