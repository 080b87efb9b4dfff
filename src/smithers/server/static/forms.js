/* The forms a person decides with: approve/deny (yes-no, select, rank), send a signal, answer a
 * human task. Each takes an inbox item and `done()`, called after the server accepted it. */
import { api, describeError, enc } from "./api.js";
import { toast } from "./chrome.js";
import { fill, h, setText } from "./dom.js";
import { fmtTime, json, runHref } from "./format.js";

/** The "by" name the person gave last time (remembered in this browser). */
export function savedBy() {
  try { return localStorage.getItem("smithers.by") || ""; } catch (e) { return ""; }
}

function saveBy(name) {
  try { localStorage.setItem("smithers.by", name); } catch (e) { /* private mode: nothing to remember */ }
}

function whereLine(item, showRun) {
  return h("span", { class: "muted small mono" },
    showRun ? [h("a", { href: runHref(item.run_id, item.node_id) }, item.run_id), " · "] : null,
    `${item.node_id}[${item.iteration}]`);
}

function optionLabel(option) {
  return h("span", { class: "opt-label" }, h("b", null, option.label || option.key),
    option.summary ? h("span", { class: "muted" }, " — " + option.summary) : null);
}

/** The options of a "select" (radio buttons) or "rank" (up/down) approval; `value()` is the choice. */
function optionsPicker(item) {
  const mode = item.mode || "approve";
  const options = item.options || [];
  const box = h("div");
  let chosen = null;
  const order = options.map((o) => o.key);
  const byKey = new Map(options.map((o) => [o.key, o]));

  function draw() {
    if (mode === "select") {
      const group = `select-${item.run_id}-${item.node_id}-${item.iteration}`;
      fill(box, h("ul", { class: "options" }, options.map((o) => h("li", null, h("label", null,
        h("input", { type: "radio", name: group, value: o.key, checked: chosen === o.key, onchange: () => { chosen = o.key; } }),
        optionLabel(o))))));
    } else if (mode === "rank") {
      const move = (i, d) => () => {
        const j = i + d;
        [order[i], order[j]] = [order[j], order[i]];
        draw();
      };
      fill(box, h("ol", { class: "options" }, order.map((key, i) => h("li", { dataset: { key } },
        h("span", { class: "rank-n" }, i + 1 + "."),
        optionLabel(byKey.get(key) || { key }),
        h("button", { type: "button", class: "chip", title: "move up", "aria-label": `move ${key} up`, disabled: i === 0, onclick: move(i, -1) }, "↑"),
        h("button", { type: "button", class: "chip", title: "move down", "aria-label": `move ${key} down`, disabled: i === order.length - 1, onclick: move(i, 1) }, "↓")))));
    }
  }
  draw();
  return { el: box, mode, chosen: () => chosen, order: () => order.slice() };
}

const APPROVE_LABELS = { select: "Approve selection", rank: "Approve ranking" };
const MODE_HINTS = { select: "Select one option:", rank: "Put the options in order (first is best):" };

/** A card to decide one pending approval. */
export function approvalCard(item, done, { showRun = false } = {}) {
  const picker = optionsPicker(item);
  const note = h("input", { type: "text", name: "note", placeholder: "Note (optional)", "aria-label": "note" });
  const by = h("input", { type: "text", name: "by", placeholder: "Your name (optional)", value: savedBy(), "aria-label": "decided by" });
  const msg = h("p", { class: "error-text small", role: "alert" });
  const approveBtn = h("button", { type: "button", class: "approve", dataset: { action: "approve" } }, APPROVE_LABELS[picker.mode] || "Approve");
  const denyBtn = h("button", { type: "button", class: "deny", dataset: { action: "deny" } }, "Deny");
  const buttons = [approveBtn, denyBtn];

  async function decide(approved) {
    setText(msg, "");
    if (approved && picker.mode === "select" && !picker.chosen()) { setText(msg, "Choose one of the options first."); return; }
    const body = { note: note.value.trim() || null, by: by.value.trim() || null, iteration: item.iteration };
    if (approved && picker.mode === "select") body.select = picker.chosen();
    if (approved && picker.mode === "rank") body.rank = picker.order();
    saveBy(by.value.trim());
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api(`/v1/runs/${enc(item.run_id)}/nodes/${enc(item.node_id)}/${approved ? "approve" : "deny"}`, { method: "POST", body });
      toast(`${approved ? "Approved" : "Denied"} ${item.node_id}`);
      if (done) done();
    } catch (e) {
      setText(msg, describeError(e));
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  approveBtn.addEventListener("click", () => decide(true));
  denyBtn.addEventListener("click", () => decide(false));

  return h("div", { class: "approval", dataset: { node: item.node_id, iteration: item.iteration, run: item.run_id } },
    h("div", { class: "row" }, h("b", null, item.title || `Approve ${item.node_id}?`), h("span", { class: "spacer" }), whereLine(item, showRun)),
    item.summary ? h("p", { class: "summary" }, item.summary) : null,
    MODE_HINTS[picker.mode] ? h("p", { class: "muted small" }, MODE_HINTS[picker.mode]) : null,
    picker.el,
    h("div", { class: "row" }, note, by),
    h("div", { class: "row", style: "margin-top:8px" }, approveBtn, denyBtn,
      item.since_ms ? h("span", { class: "muted small" }, "waiting since " + fmtTime(item.since_ms)) : null),
    msg);
}

/** Run `send()` on the form's submit; errors go to `msg` (a JSON typo names `what`), the button is disabled meanwhile. */
function onSubmit(form, button, msg, what, send) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText(msg, "");
    button.disabled = true;
    try {
      await send();
    } catch (e) {
      setText(msg, e instanceof SyntaxError ? `The ${what} is not valid JSON: ${e.message}` : describeError(e));
    } finally {
      button.disabled = false;
    }
  });
}

/** A form to send a signal to a run (prefilled from an awaited-signal inbox item when given). */
export function signalForm(runId, item, done) {
  const name = h("input", { type: "text", name: "signal", placeholder: "signal name", value: (item && item.signal) || "", "aria-label": "signal name" });
  const corr = h("input", { type: "text", name: "correlation", placeholder: "correlation id (optional)", value: (item && item.correlation_id) || "", "aria-label": "correlation id" });
  const data = h("textarea", { name: "data", rows: 3, "aria-label": "signal data (JSON)", spellcheck: "false" }, "{}");
  const msg = h("p", { class: "error-text small", role: "alert" });
  const send = h("button", { type: "submit", class: "primary" }, "Send signal");
  const form = h("form", { class: "signal-form" },
    item ? h("p", null, "Waiting for signal ", h("b", { class: "mono" }, item.signal || "?"),
      item.correlation_id ? [" with correlation ", h("code", null, item.correlation_id)] : null,
      h("span", { class: "muted small mono" }, ` on ${item.node_id}[${item.iteration}]`)) : null,
    item && item.schema ? h("details", null, h("summary", null, "payload schema"), json(item.schema)) : null,
    h("div", { class: "row" }, name, corr),
    h("label", null, "Data (JSON)"), data,
    h("div", { class: "row", style: "margin-top:6px" }, send), msg);
  onSubmit(form, send, msg, "data", async () => {
    const signal = name.value.trim();
    if (!signal) { setText(msg, "Give the signal a name."); return; }
    const payload = JSON.parse(data.value || "null");
    const res = await api(`/v1/runs/${enc(runId)}/signals/${enc(signal)}`, {
      method: "POST", body: { data: payload, correlation_id: corr.value.trim() || null, by: savedBy() || null },
    });
    toast(res && res.duplicate ? `Signal ${signal} was already delivered` : `Signal ${signal} sent`);
    if (done) done();
  });
  return form;
}

/** A form to answer a human task (an inbox item of kind "human"). */
export function humanForm(item, done, { showRun = false } = {}) {
  const value = h("textarea", { name: "answer", rows: 4, "aria-label": "answer (JSON)", spellcheck: "false" }, "{}");
  const msg = h("p", { class: "error-text small", role: "alert" });
  const send = h("button", { type: "submit", class: "primary" }, "Send answer");
  const form = h("form", { class: "approval", dataset: { node: item.node_id, request: item.request_id } },
    h("div", { class: "row" }, h("b", null, item.title || "A person's answer is needed"), h("span", { class: "spacer" }), whereLine(item, showRun)),
    item.schema ? h("details", null, h("summary", null, "answer schema"), json(item.schema)) : null,
    h("label", null, "Answer (JSON matching the schema)"), value,
    h("div", { class: "row", style: "margin-top:6px" }, send, h("span", { class: "muted small mono" }, item.request_id)), msg);
  onSubmit(form, send, msg, "answer", async () => {
    const answer = JSON.parse(value.value);
    await api(`/v1/human/${enc(item.request_id)}/answer`, { method: "POST", body: { value: answer, by: savedBy() || null } });
    toast("Answer sent");
    if (done) done();
  });
  return form;
}

/** The right form for any inbox item. */
export function itemForm(item, done, { showRun = false } = {}) {
  if (item.kind === "approval") return approvalCard(item, done, { showRun });
  if (item.kind === "signal") {
    return h("div", { class: "approval" }, showRun ? h("p", { class: "small mono" }, h("a", { href: runHref(item.run_id) }, item.run_id)) : null,
      signalForm(item.run_id, item, done));
  }
  return humanForm(item, done, { showRun });
}

/** A key that changes only when the set of items changes (so a note being typed is never wiped). */
export const itemsKey = (items) => items.map((i) => `${i.kind}:${i.run_id}:${i.node_id}:${i.iteration}`).join("|");
