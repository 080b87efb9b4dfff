/* smithers dashboard: plain JavaScript, no build step, no external resources.
 *
 * Pages (hash routing): #/ runs list, #/runs/ID a run (live node tree, plan, events, node
 * detail, actions), #/runs/ID/nodes/NODE the same with a node opened, #/inbox everything that
 * waits for a person. All text is inserted with textContent / text nodes, never as HTML.
 */
(() => {
  "use strict";

  const TERMINAL = new Set(["finished", "failed", "cancelled", "continued"]);
  const RUN_FILTERS = [
    ["", "All"], ["running", "Running"], ["waiting-approval", "Waiting approval"], ["waiting-event", "Waiting event"],
    ["waiting-timer", "Waiting timer"], ["finished", "Finished"], ["failed", "Failed"], ["cancelled", "Cancelled"],
  ];
  const RUNS_POLL_MS = 2000;
  const INBOX_POLL_MS = 5000;
  const RUN_POLL_MS = 5000;
  const MAX_EVENTS = 5000;

  const app = document.getElementById("app");
  const connEl = document.getElementById("conn");
  const toastEl = document.getElementById("toast");
  const inboxCountEl = document.getElementById("inbox-count");

  // -- DOM helpers (text only: nothing is ever parsed as HTML) ----------------------------------

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = String(v);
        else if (k === "dataset") { for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = String(dv); }
        else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
        else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
        else el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    add(el, kids);
    return el;
  }

  function add(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  /** Replace an element's children (null / false children are skipped, never shown as text). */
  function fill(el, ...kids) {
    el.replaceChildren();
    return add(el, kids);
  }

  function setText(el, text) {
    const s = text == null ? "" : String(text);
    if (el.textContent !== s) el.textContent = s;
  }

  function badge(status) {
    return h("span", { class: "badge", dataset: { status } }, h("span", { class: "dot" }), status || "unknown");
  }

  function json(value) {
    return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  }

  function runHref(runId, nodeId) {
    return "#/runs/" + encodeURIComponent(runId) + (nodeId != null ? "/nodes/" + encodeURIComponent(nodeId) : "");
  }

  // -- formatting ---------------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  function fmtTime(ms) {
    if (ms == null) return "";
    const d = new Date(ms);
    const now = new Date();
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (d.toDateString() === now.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  function fmtFull(ms) {
    if (ms == null) return "";
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtDur(ms) {
    if (ms == null || !isFinite(ms)) return "";
    ms = Math.max(0, ms);
    if (ms < 10000) return (ms / 1000).toFixed(1) + "s";
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad(s % 60)}s`;
    const hr = Math.floor(m / 60);
    if (hr < 24) return `${hr}h ${pad(m % 60)}m`;
    return `${Math.floor(hr / 24)}d ${hr % 24}h`;
  }

  function fmtNum(n) {
    return n == null ? "–" : Number(n).toLocaleString("en-US");
  }

  function short(value, max = 160) {
    let s = typeof value === "string" ? value : JSON.stringify(value);
    if (s == null) return "";
    s = s.replace(/\s+/g, " ");
    return s.length > max ? s.slice(0, max - 1) + "…" : s;
  }

  function errorMessage(err) {
    if (err == null) return null;
    if (typeof err === "string") return err;
    const kind = err.type && err.type !== "RunError" ? err.type + ": " : "";
    return kind + (err.message || JSON.stringify(err));
  }

  // -- toast, connection light --------------------------------------------------------------------

  let toastTimer = null;
  function toast(message, kind) {
    setText(toastEl, message);
    toastEl.className = "toast" + (kind === "error" ? " error" : "");
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, kind === "error" ? 7000 : 3500);
  }

  function setConn(state) {
    connEl.className = "conn" + (state === "live" ? " live" : state === "down" ? " down" : "");
    connEl.title = state === "live" ? "live: following events" : state === "down" ? "cannot reach the server" : "connected";
  }

  // -- the API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  async function api(path, { method = "GET", body, quiet = false } = {}) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body === undefined && method !== "GET") body = {}; // writes are always JSON
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      setConn("down");
      throw new ApiError(0, "NETWORK", "cannot reach the smithers server");
    }
    if (connEl.className.indexOf("live") < 0) setConn("ok");
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      const e = (data && data.error) || {};
      const err = new ApiError(res.status, e.code || "HTTP_" + res.status, e.message || res.statusText || "request failed", e.details);
      if (res.status === 401 && !quiet) showSignIn(err);
      throw err;
    }
    return data;
  }

  const enc = encodeURIComponent;

  function describeError(err) {
    const hint = err && err.details && err.details.hint ? ` (${err.details.hint})` : "";
    return (err && err.message ? err.message : String(err)) + hint;
  }

  // -- shapes: accept the documented JSON and a few near variants -----------------------------------

  function listOf(data, ...keys) {
    if (Array.isArray(data)) return data;
    for (const k of keys) if (data && Array.isArray(data[k])) return data[k];
    return [];
  }

  function runOf(data) {
    return data && typeof data === "object" ? data : {};
  }

  function nodeKey(id, iteration) {
    return id + "\u0000" + (iteration || 0);
  }

  // -- sign-in ------------------------------------------------------------------------------------

  let current = null; // the mounted page: { unmount() }
  let signInShown = false;

  function unmountCurrent() {
    if (current && current.unmount) current.unmount();
    current = null;
  }

  function showSignIn(err) {
    if (signInShown) return;
    signInShown = true;
    unmountCurrent();
    const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true, placeholder: "API token" });
    const msg = h("p", { class: "error-text small", role: "alert" });
    const button = h("button", { class: "primary", type: "submit" }, "Sign in");
    const form = h("form", { class: "panel signin", id: "signin" },
      h("h1", null, "Sign in"),
      h("p", { class: "muted" }, "This smithers server needs its API token (the value of ", h("code", null, "--auth-token"),
        " or ", h("code", null, "$SMITHERS_API_KEY"), "). It is exchanged for a browser session cookie."),
      h("label", { for: "token" }, "Token"), input, button, msg);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      setText(msg, "");
      try {
        await api("/v1/session", { method: "POST", body: { token: input.value }, quiet: true });
        signInShown = false;
        route();
      } catch (e) {
        setText(msg, e.status === 401 || e.status === 403 ? "That token is not valid." : describeError(e));
        button.disabled = false;
        input.select();
      }
    });
    fill(app, form);
    setNav(null);
    input.focus();
  }

  // -- inbox count in the top bar (all pages) ------------------------------------------------------

  let inboxCache = [];
  let inboxListeners = new Set();

  async function refreshInbox() {
    try {
      const data = await api("/v1/inbox", { quiet: true });
      inboxCache = listOf(data, "items", "inbox");
    } catch (e) {
      return inboxCache;
    }
    const n = inboxCache.length;
    inboxCountEl.hidden = n === 0;
    setText(inboxCountEl, n);
    for (const fn of inboxListeners) fn(inboxCache);
    return inboxCache;
  }

  setInterval(() => { if (!signInShown && !document.hidden) refreshInbox(); }, INBOX_POLL_MS);

  function setNav(which) {
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === which);
  }

  // -- human actions: approve / deny / signal --------------------------------------------------------

  function savedBy() {
    try { return localStorage.getItem("smithers.by") || ""; } catch (e) { return ""; }
  }
  function saveBy(v) {
    try { localStorage.setItem("smithers.by", v); } catch (e) { /* private mode */ }
  }

  /** A card to decide one pending approval (an inbox item). `done()` runs after a decision. */
  function approvalCard(item, done, { showRun = false } = {}) {
    const mode = item.mode || "approve";
    const options = item.options || [];
    const note = h("input", { type: "text", name: "note", placeholder: "Note (optional)", "aria-label": "note" });
    const by = h("input", { type: "text", name: "by", placeholder: "Your name (optional)", value: savedBy(), "aria-label": "decided by" });
    const msg = h("p", { class: "error-text small", role: "alert" });
    let chosen = null;
    let order = options.map((o) => o.key);

    const optionsBox = h("div");
    function drawOptions() {
      if (mode === "select") {
        fill(optionsBox, h("ul", { class: "options" }, options.map((o) =>
          h("li", null, h("label", null,
            h("input", { type: "radio", name: `select-${item.run_id}-${item.node_id}-${item.iteration}`, value: o.key,
              checked: chosen === o.key, onchange: () => { chosen = o.key; } }),
            h("span", { class: "opt-label" }, h("b", null, o.label || o.key), o.summary ? h("span", { class: "muted" }, " — " + o.summary) : null))))));
      } else if (mode === "rank") {
        const byKey = new Map(options.map((o) => [o.key, o]));
        fill(optionsBox, h("ol", { class: "options" }, order.map((key, i) => {
          const o = byKey.get(key) || { key };
          const move = (d) => () => {
            const j = i + d;
            if (j < 0 || j >= order.length) return;
            [order[i], order[j]] = [order[j], order[i]];
            drawOptions();
          };
          return h("li", { dataset: { key } },
            h("span", { class: "rank-n" }, i + 1 + "."),
            h("span", { class: "opt-label" }, h("b", null, o.label || o.key), o.summary ? h("span", { class: "muted" }, " — " + o.summary) : null),
            h("button", { type: "button", class: "chip", title: "move up", "aria-label": `move ${key} up`, disabled: i === 0, onclick: move(-1) }, "↑"),
            h("button", { type: "button", class: "chip", title: "move down", "aria-label": `move ${key} down`, disabled: i === order.length - 1, onclick: move(1) }, "↓"));
        })));
      }
    }
    drawOptions();

    async function decide(approved, buttons) {
      setText(msg, "");
      if (approved && mode === "select" && !chosen) { setText(msg, "Choose one of the options first."); return; }
      const body = { note: note.value.trim() || null, by: by.value.trim() || null, iteration: item.iteration };
      if (approved && mode === "select") body.select = chosen;
      if (approved && mode === "rank") body.rank = order.slice();
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
    const approveBtn = h("button", { type: "button", class: "approve", dataset: { action: "approve" } }, mode === "select" ? "Approve selection" : mode === "rank" ? "Approve ranking" : "Approve");
    const denyBtn = h("button", { type: "button", class: "deny", dataset: { action: "deny" } }, "Deny");
    approveBtn.addEventListener("click", () => decide(true, [approveBtn, denyBtn]));
    denyBtn.addEventListener("click", () => decide(false, [approveBtn, denyBtn]));

    return h("div", { class: "approval", dataset: { node: item.node_id, iteration: item.iteration, run: item.run_id } },
      h("div", { class: "row" },
        h("b", null, item.title || `Approve ${item.node_id}?`),
        h("span", { class: "spacer" }),
        h("span", { class: "muted small mono" }, showRun ? h("a", { href: runHref(item.run_id, item.node_id) }, item.run_id) : null,
          showRun ? " · " : null, `${item.node_id}[${item.iteration}]`)),
      item.summary ? h("p", { class: "summary" }, item.summary) : null,
      mode !== "approve" ? h("p", { class: "muted small" }, mode === "select" ? "Select one option:" : "Put the options in order (first is best):") : null,
      optionsBox,
      h("div", { class: "row" }, note, by),
      h("div", { class: "row", style: "margin-top:8px" }, approveBtn, denyBtn,
        item.since_ms ? h("span", { class: "muted small" }, "waiting since " + fmtTime(item.since_ms)) : null),
      msg);
  }

  /** A form to send a signal to a run (prefilled from an awaited-signal inbox item when given). */
  function signalForm(runId, item, done) {
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
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      setText(msg, "");
      const signal = name.value.trim();
      if (!signal) { setText(msg, "Give the signal a name."); return; }
      let payload;
      try { payload = JSON.parse(data.value || "null"); } catch (e) { setText(msg, "The data is not valid JSON: " + e.message); return; }
      send.disabled = true;
      try {
        const res = await api(`/v1/runs/${enc(runId)}/signals/${enc(signal)}`, {
          method: "POST", body: { data: payload, correlation_id: corr.value.trim() || null, by: savedBy() || null },
        });
        toast(res && res.duplicate ? `Signal ${signal} was already delivered` : `Signal ${signal} sent`);
        if (done) done();
      } catch (e) {
        setText(msg, describeError(e));
      } finally {
        send.disabled = false;
      }
    });
    return form;
  }

  /** A form to answer a human task (an inbox item of kind "human"). */
  function humanItem(item, done, { showRun = false } = {}) {
    const value = h("textarea", { name: "answer", rows: 4, "aria-label": "answer (JSON)", spellcheck: "false" }, "{}");
    const msg = h("p", { class: "error-text small", role: "alert" });
    const send = h("button", { type: "submit", class: "primary" }, "Send answer");
    const form = h("form", { class: "approval", dataset: { node: item.node_id, request: item.request_id } },
      h("div", { class: "row" }, h("b", null, item.title || "A person's answer is needed"), h("span", { class: "spacer" }),
        h("span", { class: "muted small mono" }, showRun ? h("a", { href: runHref(item.run_id, item.node_id) }, item.run_id) : null,
          showRun ? " · " : null, `${item.node_id}[${item.iteration}]`)),
      item.schema ? h("details", null, h("summary", null, "answer schema"), json(item.schema)) : null,
      h("label", null, "Answer (JSON matching the schema)"), value,
      h("div", { class: "row", style: "margin-top:6px" }, send, h("span", { class: "muted small mono" }, item.request_id)), msg);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      setText(msg, "");
      let answer;
      try { answer = JSON.parse(value.value); } catch (e) { setText(msg, "The answer is not valid JSON: " + e.message); return; }
      send.disabled = true;
      try {
        await api(`/v1/human/${enc(item.request_id)}/answer`, { method: "POST", body: { value: answer, by: savedBy() || null } });
        toast("Answer sent");
        if (done) done();
      } catch (e) {
        setText(msg, describeError(e));
      } finally {
        send.disabled = false;
      }
    });
    return form;
  }

  // -- runs list ------------------------------------------------------------------------------------

  function RunsPage(params) {
    let status = params.get("status") || "";
    let limit = 50;
    let timer = null;
    let alive = true;
    let lastOk = null;

    const list = h("ul", { class: "runs", id: "runs" });
    const more = h("button", { type: "button", hidden: true, onclick: () => { limit += 50; load(); } }, "Show more");
    const updated = h("span", { class: "muted small" });
    const filters = h("div", { class: "filters", role: "toolbar", "aria-label": "filter by status" });

    function drawFilters() {
      fill(filters, ...RUN_FILTERS.map(([value, label]) =>
        h("button", { type: "button", class: "chip" + (value === status ? " on" : ""), dataset: { filter: value || "all" },
          "aria-pressed": value === status ? "true" : "false",
          onclick: () => { status = value; history.replaceState(null, "", value ? `#/?status=${enc(value)}` : "#/"); drawFilters(); load(); } },
        label)));
    }

    fill(app, 
      h("div", { class: "row" }, h("h1", null, "Runs"), h("span", { class: "spacer" }), updated),
      filters,
      h("section", { class: "panel" }, list, h("div", { class: "row", style: "justify-content:center" }, more)));
    drawFilters();
    setNav("runs");

    function row(r) {
      const ended = TERMINAL.has(r.status);
      const elapsed = (ended ? r.updated_at_ms : Date.now()) - r.created_at_ms;
      return h("li", { class: "run-row", dataset: { run: r.run_id, status: r.status } },
        h("span", { class: "id mono" }, h("a", { href: runHref(r.run_id) }, r.run_id)),
        h("span", { class: "wf" }, r.workflow),
        h("span", { class: "status" }, badge(r.status)),
        h("span", { class: "created", title: fmtFull(r.created_at_ms) }, fmtTime(r.created_at_ms)),
        h("span", { class: "elapsed", title: "elapsed" }, fmtDur(elapsed)));
    }

    async function load() {
      clearTimeout(timer);
      const qs = new URLSearchParams({ limit: String(limit), offset: "0" });
      if (status) qs.set("status", status);
      try {
        const data = await api("/v1/runs?" + qs.toString());
        if (!alive) return;
        const runs = listOf(data, "runs", "items");
        const head = h("li", { class: "run-row head" }, h("span", null, "Run"), h("span", null, "Workflow"), h("span", null, "Status"),
          h("span", null, "Created"), h("span", null, "Elapsed"));
        fill(list, head, ...runs.map(row));
        if (!runs.length) {
          list.append(h("li", { class: "empty" }, status ? `No ${status} runs.` : "No runs yet. Start one with ",
            status ? null : h("code", null, "smithers up workflow.py"), status ? null : "."));
        }
        const total = data && typeof data.total === "number" ? data.total : null;
        more.hidden = total != null ? runs.length >= total : runs.length < limit;
        lastOk = Date.now();
        setText(updated, "updated " + fmtTime(lastOk));
      } catch (e) {
        if (!alive || e.status === 401) return;
        setText(updated, "cannot refresh: " + describeError(e));
      }
      if (alive) timer = setTimeout(load, RUNS_POLL_MS);
    }

    load();
    refreshInbox();
    return { unmount() { alive = false; clearTimeout(timer); } };
  }

  // -- inbox ----------------------------------------------------------------------------------------

  function InboxPage() {
    let alive = true;
    const box = h("div", { id: "inbox" });
    fill(app, h("h1", null, "Inbox"), h("p", { class: "muted" }, "Everything a run is waiting for a person to decide or send."), box);
    setNav("inbox");
    let shownKey = null;

    function draw(items) {
      // redraw only when the set of items changes, so typing a note is never interrupted
      const key = items.map((i) => `${i.kind}:${i.run_id}:${i.node_id}:${i.iteration}`).join("|");
      if (key === shownKey) return;
      shownKey = key;
      if (!items.length) {
        fill(box, h("section", { class: "panel empty" }, "Nothing is waiting for you."));
        return;
      }
      fill(box, ...items.map((item) => h("section", { class: "panel waiting" },
        item.kind === "approval" ? approvalCard(item, () => { shownKey = null; refreshInbox(); }, { showRun: true })
          : item.kind === "signal" ? [h("p", { class: "small mono" }, h("a", { href: runHref(item.run_id) }, item.run_id)), signalForm(item.run_id, item, () => { shownKey = null; refreshInbox(); })]
            : humanItem(item, () => { shownKey = null; refreshInbox(); }, { showRun: true }))));
    }
    inboxListeners.add(draw);
    refreshInbox().then((items) => { if (alive) draw(items); });
    return { unmount() { alive = false; inboxListeners.delete(draw); } };
  }

  // -- a run ----------------------------------------------------------------------------------------

  function RunPage(runId, nodeId) {
    const S = {
      run: null,                 // GET /v1/runs/{id}, normalised
      detailNodes: new Map(),    // key -> node entry of the run detail
      live: new Map(),           // key -> state replayed from the event stream
      tree: null,                // the latest frame's tree
      frames: 0,
      lastSeq: 0,
      events: [],
      inbox: [],
      tab: "nodes",
      selected: nodeId,
      plan: { frame: null, follow: true, data: null },
      alive: true,
      streaming: false,
      abort: null,
      timers: [],
    };

    // layout ------------------------------------------------------------------
    const headBox = h("section", { class: "panel", id: "run-head" });
    const headMain = h("div");
    const inputBox = h("details", { class: "run-input", hidden: true }, h("summary", null, "input"));
    const signalBox = h("details", { class: "signal-box", hidden: true }, h("summary", null, "send a signal"), signalForm(runId, null, () => refresh()));
    add(headBox, [headMain, inputBox, signalBox]);
    let elapsedEl = null;
    const waitBox = h("section", { class: "panel waiting", id: "waiting", hidden: true });
    const tabs = h("div", { class: "tabs", role: "tablist" });
    const treeList = h("ul", { class: "tree", id: "tree" });
    const detailBox = h("section", { class: "panel", id: "node-detail", hidden: true });
    const nodesView = h("div", { class: "split", id: "nodes-view" }, h("section", { class: "panel" }, treeList), detailBox);
    const planBox = h("div", { class: "plan", id: "plan" });
    const frameBar = h("div", { class: "frame-bar" });
    const planView = h("section", { class: "panel", id: "plan-view", hidden: true }, frameBar, planBox);
    const eventsList = h("ol", { class: "events", id: "events" });
    const eventsFilter = h("input", { type: "search", placeholder: "filter: type or node", "aria-label": "filter events" });
    const eventsBox = h("div", { class: "events-box" }, eventsList);
    const eventsView = h("section", { class: "panel", id: "events-view", hidden: true },
      h("div", { class: "row", style: "margin-bottom:8px" }, eventsFilter, h("span", { class: "muted small", id: "events-count" })), eventsBox);

    fill(app, 
      h("div", { class: "crumbs" }, h("a", { href: "#/" }, "← Runs")),
      headBox, waitBox, tabs, nodesView, planView, eventsView);
    setNav("runs");

    function drawTabs() {
      const counts = { events: S.events.length };
      fill(tabs, ...[["nodes", "Nodes"], ["plan", "Plan"], ["events", "Events"]].map(([key, label]) =>
        h("button", { type: "button", role: "tab", class: S.tab === key ? "on" : "", "aria-selected": S.tab === key ? "true" : "false", dataset: { tab: key },
          onclick: () => { S.tab = key; drawTabs(); showTab(); } }, label, counts[key] ? h("span", { class: "muted small" }, ` ${counts[key]}`) : null)));
    }
    function showTab() {
      nodesView.hidden = S.tab !== "nodes";
      planView.hidden = S.tab !== "plan";
      eventsView.hidden = S.tab !== "events";
      if (S.tab === "plan") loadPlan(S.plan.follow ? null : S.plan.frame);
      if (S.tab === "events") { renderEvents(); eventsBox.scrollTop = eventsBox.scrollHeight; }
    }
    drawTabs();
    showTab();

    // header ------------------------------------------------------------------
    let cancelArmed = false;
    function drawHead() {
      const r = S.run;
      if (!r) { fill(headMain, h("h1", { class: "mono" }, runId), h("p", { class: "muted" }, "Loading…")); return; }
      const status = r.status;
      const ended = TERMINAL.has(status);
      const end = ended ? (r.finished_at_ms || r.updated_at_ms) : Date.now();
      const actions = h("div", { class: "actions" });
      if (!ended) {
        const cancel = h("button", { type: "button", class: "danger" + (cancelArmed ? " confirm" : ""), dataset: { action: "cancel" } },
          cancelArmed ? "Confirm cancel" : "Cancel run");
        cancel.addEventListener("click", async () => {
          if (!cancelArmed) { cancelArmed = true; drawHead(); setTimeout(() => { if (cancelArmed) { cancelArmed = false; drawHead(); } }, 4000); return; }
          cancelArmed = false;
          cancel.disabled = true;
          try {
            const res = await api(`/v1/runs/${enc(runId)}/cancel`, { method: "POST" });
            toast(res && res.status === "cancelling" ? "Cancelling: the run stops within a second" : "Run cancelled");
          } catch (e) { toast(describeError(e), "error"); }
          refresh();
        });
        actions.append(cancel);
      }
      // a run nobody runs can be resumed: failed, cancelled, or waiting / running without a live owner
      if (status === "failed" || status === "cancelled" || (!ended && r.owner_alive === false)) {
        const resume = h("button", { type: "button", class: "primary", dataset: { action: "resume" } }, "Resume");
        resume.addEventListener("click", async () => {
          resume.disabled = true;
          try {
            await api(`/v1/runs/${enc(runId)}/resume`, { method: "POST", body: {} });
            toast("Resuming the run");
          } catch (e) { toast(describeError(e), "error"); }
          refresh();
          ensureStream();
        });
        actions.append(resume);
      }
      const error = errorMessage(r.error);
      const counts = {};
      for (const n of allNodes()) counts[n.status] = (counts[n.status] || 0) + 1;
      const progress = Object.entries(counts).sort().map(([s, n]) => h("span", { dataset: { status: s } }, h("span", { class: "dot" }), ` ${n} ${s}`));
      elapsedEl = h("b", null, r.created_at_ms && end ? fmtDur(end - r.created_at_ms) : "");
      fill(headMain,
        h("div", { class: "run-head" },
          h("div", { class: "title" },
            h("div", { class: "row" }, h("h1", { class: "mono", id: "run-id" }, r.run_id || runId), h("span", { id: "run-status", dataset: { status } }, badge(status))),
            h("div", { class: "meta" },
              h("span", null, "workflow ", h("b", null, r.workflow || "?")),
              h("span", { title: fmtFull(r.created_at_ms) }, "started ", h("b", null, fmtTime(r.created_at_ms))),
              r.created_at_ms ? h("span", null, ended ? "took " : "elapsed ", elapsedEl) : null,
              r.continued_to ? h("span", null, "continued as ", h("a", { class: "mono", href: runHref(r.continued_to) }, r.continued_to)) : null,
              r.continued_from ? h("span", null, "continues ", h("a", { class: "mono", href: runHref(r.continued_from) }, r.continued_from)) : null),
            h("div", { class: "meta small" }, progress)),
          actions),
        error ? h("div", { class: "run-error" }, error) : null);
      if (inputBox.hidden && r.input && Object.keys(r.input).length) {
        inputBox.append(json(r.input));
        inputBox.hidden = false;
      }
      signalBox.hidden = ended;
    }

    // waiting items -----------------------------------------------------------------
    let waitKey = null;
    function drawWaiting() {
      const items = S.inbox.filter((i) => i.run_id === runId);
      const key = items.map((i) => `${i.kind}:${i.node_id}:${i.iteration}`).join("|");
      if (key === waitKey) return; // never wipe a note being typed
      waitKey = key;
      waitBox.hidden = !items.length;
      if (!items.length) { fill(waitBox); return; }
      fill(waitBox, h("h2", null, "Waiting for you"), ...items.map((item) =>
        item.kind === "approval" ? approvalCard(item, afterDecision)
          : item.kind === "signal" ? h("div", { class: "approval" }, signalForm(runId, item, afterDecision))
            : humanItem(item, afterDecision)));
    }
    function afterDecision() {
      waitKey = null;
      refresh();
      refreshInbox();
      ensureStream();
    }

    // node state ---------------------------------------------------------------------
    function nodeState(id, iteration, treeStatus) {
      const key = nodeKey(id, iteration);
      const live = S.live.get(key);
      const det = S.detailNodes.get(key);
      const attempts = (det && det.attempts) || [];
      const last = attempts[attempts.length - 1];
      const st = {
        id, iteration: iteration || 0,
        status: (live && live.status) || (det && det.status) || treeStatus || "pending",
        attempt: (live && live.attempt) || (last && last.attempt) || null,
        started: (live && live.started) || (last && last.started_at_ms) || null,
        ended: live ? live.ended : (last && last.finished_at_ms) || null,
        error: (live && live.error) || (last && last.error && errorMessage(last.error)) || null,
      };
      if (st.status === "finished") st.error = null;
      return st;
    }

    function allNodes() {
      const keys = new Map();
      for (const [k, v] of S.detailNodes) keys.set(k, [v.id, v.iteration]);
      for (const [k, v] of S.live) keys.set(k, [v.id, v.iteration]);
      return [...keys.values()].map(([id, it]) => nodeState(id, it));
    }

    // the live tree -----------------------------------------------------------------
    const rows = new Map(); // key -> row element
    let treeShape = null;

    function groupLabel(node) {
      const t = node.t;
      if (t === "loop") return `loop ${node.id || ""} · pass ${node.it ?? "?"}${node.max != null ? " of max " + node.max : ""}${node.done ? " · done" : ""}`;
      if (t === "parallel") return "parallel" + (node.limit ? ` · max ${node.limit}` : "");
      if (node.id) return `${t} ${node.id}`;
      return t;
    }

    function buildTree() {
      // the row layout: from the plan tree, then any node the plan no longer shows
      const layout = [];
      const seen = new Set();
      function walk(node, depth) {
        if (!node) return;
        if (node.t === "task") {
          layout.push({ kind: "task", depth, id: node.id, it: node.it || 0, treeStatus: node.status, mode: node.mode });
          seen.add(nodeKey(node.id, node.it || 0));
          for (const c of node.children || []) walk(c, depth + 1);
          return;
        }
        const isRoot = node.t === "workflow" && depth === 0;
        if (!isRoot) layout.push({ kind: "group", depth, label: groupLabel(node) });
        for (const c of node.children || []) walk(c, isRoot ? 0 : depth + 1);
      }
      walk(S.tree, 0);
      const rest = [];
      for (const [k, v] of S.detailNodes) if (!seen.has(k)) rest.push([k, v.id, v.iteration]);
      for (const [k, v] of S.live) if (!seen.has(k) && !S.detailNodes.has(k)) rest.push([k, v.id, v.iteration]);
      if (rest.length) {
        if (layout.length) layout.push({ kind: "group", depth: 0, label: "earlier iterations and other nodes" });
        for (const [, id, it] of rest) layout.push({ kind: "task", depth: layout.length && S.tree ? 1 : 0, id, it });
      }
      const shape = layout.map((l) => l.kind === "task" ? `t:${l.depth}:${l.id}:${l.it}` : `g:${l.depth}:${l.label}`).join("\n");
      if (shape !== treeShape) {
        treeShape = shape;
        rows.clear();
        fill(treeList, ...layout.map((l) => {
          if (l.kind === "group") return h("li", { class: "tree-row group", style: `--depth:${l.depth}` }, l.label);
          const row = taskRow(l);
          rows.set(nodeKey(l.id, l.it), row);
          return row;
        }));
        if (!layout.length) fill(treeList, h("li", { class: "empty" }, S.run ? "No tasks yet." : "Loading…"));
      }
      for (const l of layout) if (l.kind === "task") updateRow(rows.get(nodeKey(l.id, l.it)), l);
    }

    function taskRow(l) {
      const row = h("li", { class: "tree-row task", style: `--depth:${l.depth}`, tabindex: "0", role: "button",
        dataset: { node: l.id, iteration: l.it } });
      row._parts = {
        dot: h("span", { class: "dot" }),
        name: h("span", { class: "name" }, l.id),
        status: h("span", { class: "status-text" }),
        iter: h("span", { class: "iter", title: "iteration" }),
        attempt: h("span", { class: "attempt", title: "attempt" }),
        elapsed: h("span", { class: "elapsed", title: "elapsed" }),
        err: h("span", { class: "err" }),
      };
      const p = row._parts;
      add(row, [p.dot, p.name, p.status, h("span", { class: "facts" }, p.iter, p.attempt, p.elapsed), p.err]);
      const open = () => selectNode(l.id);
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      return row;
    }

    function updateRow(row, l) {
      if (!row) return;
      const st = nodeState(l.id, l.it, l.treeStatus);
      const p = row._parts;
      if (row.dataset.status !== st.status) row.dataset.status = st.status;
      row.classList.toggle("selected", S.selected === l.id);
      setText(p.status, st.status);
      setText(p.iter, st.iteration ? `iter ${st.iteration}` : "");
      setText(p.attempt, st.attempt && st.attempt > 0 ? `attempt ${st.attempt}` : "");
      let elapsed = "";
      if (st.started) {
        const until = st.ended || (st.status === "running" || st.status.startsWith("waiting") ? Date.now() : null);
        if (until) elapsed = (st.status.startsWith("waiting") ? "waiting " : "") + fmtDur(until - st.started);
      }
      setText(p.elapsed, elapsed);
      setText(p.err, st.status === "failed" || st.status === "retrying" ? st.error || "" : "");
      p.err.hidden = !p.err.textContent;
    }

    let treeQueued = false;
    function queueTree() {
      if (treeQueued) return;
      treeQueued = true;
      requestAnimationFrame(() => { treeQueued = false; if (S.alive) { buildTree(); } });
    }

    // node detail -----------------------------------------------------------------
    let detailSeq = 0;
    function selectNode(id) {
      if (id === S.selected) { loadDetail(); return; }
      S.selected = id;
      history.replaceState(null, "", id != null ? runHref(runId, id) : runHref(runId));
      for (const row of rows.values()) row.classList.toggle("selected", row.dataset.node === id);
      if (S.tab !== "nodes") { S.tab = "nodes"; drawTabs(); showTab(); }
      loadDetail(true);
    }

    async function loadDetail(scroll) {
      const id = S.selected;
      nodesView.classList.toggle("with-detail", id != null);
      if (id == null) { detailBox.hidden = true; return; }
      const mine = ++detailSeq;
      detailBox.hidden = false;
      if (scroll) fill(detailBox, h("p", { class: "muted" }, "Loading ", h("span", { class: "mono" }, id), "…"));
      try {
        const data = await api(`/v1/runs/${enc(runId)}/nodes/${enc(id)}`);
        if (mine !== detailSeq || !S.alive) return;
        drawDetail(data);
      } catch (e) {
        if (mine !== detailSeq || !S.alive) return;
        fill(detailBox, detailHeader(id), h("p", { class: "error-text" }, describeError(e)));
      }
      if (scroll && window.innerWidth < 960) detailBox.scrollIntoView({ behavior: "smooth", block: "start" });
    }

    function detailHeader(id, status) {
      return h("div", { class: "detail-head" },
        h("span", { class: "id mono" }, id),
        status ? badge(status) : null,
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "link", "aria-label": "close node detail", onclick: () => { S.selected = null; history.replaceState(null, "", runHref(runId)); buildTree(); loadDetail(); } }, "close ×"));
    }

    function drawDetail(data) {
      const node = data;
      const iterations = (node.iterations || []).slice().sort((a, b) => b.iteration - a.iteration);
      const latest = iterations[0];
      const status = latest ? nodeState(node.id, latest.iteration).status : null;
      const parts = [detailHeader(node.id, status)];
      parts.push(h("dl", { class: "kv" },
        node.label ? [h("dt", null, "label"), h("dd", null, node.label)] : null,
        node.kind ? [h("dt", null, "kind"), h("dd", null, node.kind)] : null,
        node.output_table ? [h("dt", null, "output table"), h("dd", { class: "mono" }, node.output_table)] : null,
        node.mode ? [h("dt", null, "mode"), h("dd", null, node.mode)] : null));

      // an approval waiting on this node
      const waiting = S.inbox.filter((i) => i.run_id === runId && i.node_id === node.id && i.kind === "approval");
      for (const item of waiting) parts.push(h("div", { class: "panel waiting", style: "margin:8px 0" }, approvalCard(item, afterDecision)));

      for (const it of iterations) {
        const box = h("div", { class: "iteration", dataset: { iteration: it.iteration } });
        add(box, [
          h("h3", null, iterations.length > 1 || it.iteration ? `iteration ${it.iteration}` : "status"),
          h("div", { class: "row" }, badge(nodeState(node.id, it.iteration).status),
            it.updated_at_ms ? h("span", { class: "muted small" }, "updated " + fmtTime(it.updated_at_ms)) : null,
            it.retry_at_ms ? h("span", { class: "muted small" }, "retry at " + fmtTime(it.retry_at_ms)) : null),
        ]);
        if (it.error) box.append(errorBlock(it.error));
        const attempts = it.attempts || [];
        if (attempts.length) {
          box.append(h("h3", null, "attempts"), h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
            h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "status"), h("th", null, "started"), h("th", null, "took"), h("th", null, "error"))),
            h("tbody", null, attempts.map((a) => h("tr", { dataset: { attempt: a.attempt } },
              h("td", null, a.attempt),
              h("td", null, badge(a.status)),
              h("td", { title: fmtFull(a.started_at_ms) }, fmtTime(a.started_at_ms)),
              h("td", null, a.finished_at_ms ? fmtDur(a.finished_at_ms - a.started_at_ms) : a.status === "running" ? fmtDur(Date.now() - a.started_at_ms) : ""),
              h("td", null, a.error ? errorBlock(a.error, true) : "")))))));
          const hb = attempts.filter((a) => a.heartbeat != null).pop();
          if (hb) box.append(h("details", null, h("summary", null, `last heartbeat (attempt ${hb.attempt}${hb.heartbeat_at_ms ? ", " + fmtTime(hb.heartbeat_at_ms) : ""})`), json(hb.heartbeat)));
        }
        if (it.output != null) box.append(h("h3", null, "output"), json(it.output));
        parts.push(box);
      }
      if (!iterations.length) parts.push(h("p", { class: "muted" }, "Not started yet."));

      const transcript = transcriptOf(node);
      const usage = usageOf(node, transcript);
      if (usage) {
        parts.push(h("h3", null, "token usage"), h("div", { class: "usage", id: "usage" },
          h("span", null, "input ", h("b", null, fmtNum(usage.input_tokens))),
          h("span", null, "output ", h("b", null, fmtNum(usage.output_tokens))),
          usage.cache_read_tokens ? h("span", null, "cache read ", h("b", null, fmtNum(usage.cache_read_tokens))) : null,
          usage.cache_write_tokens ? h("span", null, "cache write ", h("b", null, fmtNum(usage.cache_write_tokens))) : null,
          usage.cost_usd != null ? h("span", null, "cost ", h("b", null, "$" + Number(usage.cost_usd).toFixed(4))) : null));
      }
      if (transcript.length) {
        parts.push(h("h3", null, "agent transcript"), h("ol", { class: "transcript", id: "transcript" }, transcript.map(transcriptItem)));
      }
      fill(detailBox, ...parts);
    }

    function errorBlock(err, compact) {
      if (typeof err !== "object" || err === null) return h("div", { class: "error-text" }, String(err));
      return h("div", null,
        h("div", { class: "error-text" }, errorMessage(err), err.code ? h("span", { class: "muted small mono" }, ` (${err.code})`) : null),
        err.hint ? h("div", { class: "muted small" }, err.hint) : null,
        err.traceback ? h("details", null, h("summary", null, "traceback"), h("pre", null, err.traceback)) : null,
        !compact && err.details && Object.keys(err.details).length ? h("details", null, h("summary", null, "details"), json(err.details)) : null);
    }

    function transcriptOf(node) {
      return Array.isArray(node.transcript) ? node.transcript : [];
    }

    /** Token usage summed over the node's TokenUsageReported events (every turn of every attempt). */
    function usageOf(node, transcript) {
      const reports = transcript.filter((e) => e.type === "TokenUsageReported");
      if (!reports.length) return null;
      const total = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: null };
      for (const e of reports) {
        const p = e.payload || {};
        for (const k of ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]) total[k] += Number(p[k] || 0);
        if (p.cost_usd != null) total.cost_usd = (total.cost_usd || 0) + Number(p.cost_usd);
      }
      return total;
    }

    function transcriptItem(e) {
      const p = e.payload || {};
      const where = e.attempt ? `attempt ${e.attempt}` : "";
      switch (e.type) {
        case "AgentTurn":
          return h("li", null, h("div", { class: "who" }, `prompt · turn ${p.turn ?? "?"} ${p.kind ? "(" + p.kind + ")" : ""} → ${p.agent || "agent"} ${where}`),
            h("pre", null, p.prompt || ""));
        case "AgentReply":
          return h("li", null, h("div", { class: "who" }, `reply · ${p.outcome || ""} ${where}`), h("pre", null, p.text || ""),
            p.errors ? h("div", { class: "error-text small" }, "validation errors: ", h("pre", null, typeof p.errors === "string" ? p.errors : JSON.stringify(p.errors, null, 2))) : null);
        case "AgentEvent": {
          const d = p.data || {};
          if (p.kind === "text") return h("li", null, h("div", { class: "who" }, "agent"), h("div", { style: "white-space:pre-wrap" }, d.text || ""));
          if (p.kind === "tool_use") return h("li", null, h("div", { class: "who" }, "tool call"), h("div", { class: "tool" }, `→ ${d.name || "?"} `, short(d.input, 400)));
          if (p.kind === "tool_result") return h("li", null, h("div", { class: "who" }, d.is_error ? "tool error" : "tool result"), h("div", { class: "tool" }, "← ", short(d.output, 400)));
          if (p.kind === "thinking") return h("li", null, h("div", { class: "who" }, "thinking"), h("div", { class: "muted", style: "white-space:pre-wrap" }, short(d.text || d.thinking || d, 600)));
          if (p.kind === "error") return h("li", null, h("div", { class: "who" }, "agent error"), h("div", { class: "error-text" }, d.message || short(d)));
          return h("li", null, h("div", { class: "who" }, p.kind || "event"), h("div", { class: "tool muted" }, short(d, 300)));
        }
        case "TokenUsageReported":
          return h("li", null, h("div", { class: "who" }, `usage · ${p.model || p.agent || ""}`),
            h("div", { class: "small" }, `in ${fmtNum(p.input_tokens)} · out ${fmtNum(p.output_tokens)}` + (p.cost_usd != null ? ` · $${Number(p.cost_usd).toFixed(4)}` : "")));
        default:
          return h("li", null, h("div", { class: "who" }, e.type || "event"), h("div", { class: "tool muted" }, short(p, 300)));
      }
    }

    // events ---------------------------------------------------------------------------
    function eventKind(type) {
      if (type === "NodeFailed" || type === "RunFailed" || type === "ApprovalDenied" || type === "HumanAnswerRejected") return "bad";
      if (type.startsWith("Node") || type.startsWith("Attempt") || type.startsWith("Loop") || type === "FrameCommitted") return "node";
      if (type.startsWith("Run")) return "run";
      if (type.startsWith("Approval") || type.startsWith("Human") || type.startsWith("Signal") || type.startsWith("Timer")) return "human";
      if (type.startsWith("Agent") || type.startsWith("Token") || type.startsWith("Tool")) return "agent";
      return "other";
    }

    function eventSummary(e) {
      const p = e.payload || {};
      if (p.error && typeof p.error === "object") return errorMessage(p.error) + (p.will_retry ? " (will retry)" : "");
      switch (e.type) {
        case "FrameCommitted": return `frame ${p.frame} · ${p.tasks} tasks`;
        case "NodeRetrying": return p.retry_at_ms ? `retry at ${fmtTime(p.retry_at_ms)}` : "";
        case "NodeWaiting": return p.status || "";
        case "RunWaiting": return (p.waiting_for || []).map((w) => `${w.kind || w.status} ${w.node_id}[${w.iteration}]`).join(", ");
        case "RunStarted": return p.resumed ? "resumed" + (p.previous_status ? ` (was ${p.previous_status})` : "") : p.workflow ? `workflow ${p.workflow}` : "";
        case "ApprovalRequested": return (p.request && p.request.title) || "";
        case "ApprovalDecided": return `${p.approved ? "approved" : "denied"}${p.by ? " by " + p.by : ""}${p.note ? " — " + p.note : ""}`;
        case "SignalSent": return `${p.signal}${p.by ? " by " + p.by : ""}`;
        case "AgentEvent": {
          const d = p.data || {};
          if (p.kind === "text") return "text: " + short(d.text || "", 120);
          if (p.kind === "tool_use") return `tool ${d.name || ""}`;
          return p.kind || "";
        }
        case "AgentTurn": return `turn ${p.turn} → ${p.agent || ""}`;
        case "AgentReply": return `reply (${p.outcome || ""})`;
        case "TokenUsageReported": return `in ${fmtNum(p.input_tokens)} · out ${fmtNum(p.output_tokens)}`;
        case "LoopIteration": return `${p.loop_id || ""} pass ${p.loop_iteration ?? ""}`;
        case "RunContinuedAsNew": return p.new_run_id ? `as ${p.new_run_id}` : "";
        default: {
          const rest = {};
          for (const [k, v] of Object.entries(p)) if (v != null && k !== "status") rest[k] = v;
          return Object.keys(rest).length ? short(rest, 140) : "";
        }
      }
    }

    function eventRow(e) {
      const where = e.node_id != null ? `${e.node_id}[${e.iteration ?? 0}]` + (e.attempt ? ` #${e.attempt}` : "") : "";
      return h("li", { class: "ev", dataset: { kind: eventKind(e.type || ""), seq: e.seq, type: e.type } },
        h("span", { class: "seq" }, e.seq),
        h("span", { class: "ts", title: fmtFull(e.ts_ms) }, fmtTime(e.ts_ms)),
        h("span", { class: "type" }, e.type),
        h("span", { class: "what" },
          where ? h("a", { href: runHref(runId, e.node_id), class: "mono", onclick: (ev) => { ev.preventDefault(); selectNode(e.node_id); } }, where) : null,
          where ? " " : null, h("span", { class: "muted" }, eventSummary(e))));
    }

    function eventMatches(e) {
      const q = eventsFilter.value.trim().toLowerCase();
      if (!q) return true;
      return (e.type || "").toLowerCase().includes(q) || String(e.node_id || "").toLowerCase().includes(q);
    }

    const SHOWN_EVENTS = 1500;
    function renderEvents() {
      const shown = S.events.filter(eventMatches).slice(-SHOWN_EVENTS);
      fill(eventsList, ...shown.map(eventRow));
      setText(document.getElementById("events-count"), `${S.events.length} events` + (S.events.length >= MAX_EVENTS ? " (oldest dropped)" : ""));
    }
    eventsFilter.addEventListener("input", renderEvents);

    function appendEventRow(e) {
      if (S.tab !== "events" || !eventMatches(e)) return;
      const atBottom = eventsBox.scrollHeight - eventsBox.scrollTop - eventsBox.clientHeight < 40;
      eventsList.append(eventRow(e));
      while (eventsList.childElementCount > SHOWN_EVENTS) eventsList.firstElementChild.remove();
      setText(document.getElementById("events-count"), `${S.events.length} events`);
      if (atBottom) eventsBox.scrollTop = eventsBox.scrollHeight;
    }

    // applying an event -----------------------------------------------------------------
    const RUN_STATUS_OF = { RunFinished: "finished", RunFailed: "failed", RunCancelled: "cancelled", RunContinuedAsNew: "continued", RunStarted: "running" };

    function applyEvent(e) {
      if (typeof e.seq === "number") {
        if (e.seq <= S.lastSeq) return;
        S.lastSeq = e.seq;
      }
      S.events.push(e);
      if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
      appendEventRow(e);
      const type = e.type || "";
      const p = e.payload || {};
      if (e.node_id != null) {
        const key = nodeKey(e.node_id, e.iteration);
        const n = S.live.get(key) || { id: e.node_id, iteration: e.iteration || 0, status: null, attempt: null, started: null, ended: null, error: null };
        switch (type) {
          case "NodePending": n.status = "pending"; break;
          case "NodeStarted": n.status = "running"; n.attempt = e.attempt || n.attempt; n.started = e.ts_ms; n.ended = null; n.error = null; break;
          case "NodeFinished": n.status = "finished"; n.ended = e.ts_ms; n.error = null; if (e.attempt) n.attempt = e.attempt; break;
          case "NodeFailed": n.status = p.will_retry ? "retrying" : "failed"; n.ended = e.ts_ms; n.error = errorMessage(p.error); break;
          case "NodeRetrying": n.status = "retrying"; break;
          case "NodeSkipped": n.status = "skipped"; n.ended = n.ended || e.ts_ms; break;
          case "NodeCancelled": n.status = "cancelled"; n.ended = e.ts_ms; break;
          case "NodeWaiting": n.status = p.status || "waiting-approval"; n.started = e.ts_ms; n.ended = null; break;
          case "AttemptAbandoned": n.status = "pending"; n.ended = e.ts_ms; break;
          default: break;
        }
        if (n.status != null) S.live.set(key, n);
        queueTree();
        if (S.selected === e.node_id) soon("detail", loadDetail, 300);
        if (S.tab === "plan" && S.plan.follow && S.plan.data) soon("plan", () => drawPlan(S.plan.data), 200);
      }
      if (type === "RunWaiting" && S.run) S.run.status = p.status || "waiting-approval";
      else if (RUN_STATUS_OF[type] && S.run && (e.run_id == null || e.run_id === runId)) S.run.status = RUN_STATUS_OF[type];
      if (type.startsWith("Run")) { drawHead(); soon("run", refresh, 150); }
      if (type === "FrameCommitted") {
        if (typeof p.frame === "number") S.frames = Math.max(S.frames, p.frame + 1);
        soon("frames", () => loadTree(), 150);
      }
      if (type.startsWith("Approval") || type.startsWith("Signal") || type.startsWith("Human") || type === "NodeWaiting" || type === "RunWaiting") soon("inbox", loadInbox, 150);
      if (S.tab === "events") drawTabs();
    }

    const soonTimers = {};
    function soon(name, fn, ms) {
      if (soonTimers[name]) return;
      soonTimers[name] = setTimeout(() => { soonTimers[name] = null; if (S.alive) fn(); }, ms);
    }

    // the event stream (SSE over fetch, so every event type arrives and reconnects resume) ---------
    async function ensureStream() {
      if (S.streaming || !S.alive) return;
      S.streaming = true;
      let delay = 500;
      try {
        while (S.alive) {
          const got = await streamOnce();
          if (!S.alive) return;
          setConn("ok");
          if (got) delay = 500;
          await refresh();
          if (!S.alive) return;
          if (S.run && TERMINAL.has(S.run.status)) return; // the server closes the stream when the run ends
          await sleep(delay);
          delay = Math.min(delay * 2, 8000);
        }
      } finally {
        S.streaming = false;
      }
    }

    async function streamOnce() {
      const ctrl = new AbortController();
      S.abort = ctrl;
      const headers = { Accept: "text/event-stream" };
      if (S.lastSeq) headers["Last-Event-ID"] = String(S.lastSeq);
      let got = false;
      try {
        const res = await fetch(`/v1/runs/${enc(runId)}/events`, { headers, credentials: "same-origin", cache: "no-store", signal: ctrl.signal });
        if (res.status === 401) { showSignIn(); return false; }
        if (!res.ok || !res.body) return false;
        setConn("live");
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            if (handleBlock(block)) got = true;
          }
        }
      } catch (e) {
        if (!S.alive) return got;
        setConn("down");
      }
      return got;
    }

    function handleBlock(block) {
      let data = [];
      let id = null;
      let type = null;
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "id") id = value;
        else if (field === "event") type = value;
      }
      if (!data.length) return false;
      let ev;
      try { ev = JSON.parse(data.join("\n")); } catch (e) { return false; }
      if (!ev || typeof ev !== "object") return false;
      if (ev.seq == null && id != null && /^\d+$/.test(id)) ev.seq = Number(id);
      if (type === "end") { // the run is over and every event was sent: the server closes the stream
        if (S.run && ev.status) { S.run.status = ev.status; drawHead(); }
        return false;
      }
      if (!ev.type && type) ev.type = type;
      if (!ev.type) return false;
      applyEvent(ev);
      return true;
    }

    const sleep = (ms) => new Promise((r) => { const t = setTimeout(r, ms); S.timers.push(t); });

    // loading -------------------------------------------------------------------------------
    async function refresh() {
      try {
        const data = await api(`/v1/runs/${enc(runId)}`);
        if (!S.alive) return;
        S.run = runOf(data);
        if (typeof S.run.frames === "number") S.frames = Math.max(S.frames, S.run.frames);
        S.detailNodes.clear();
        for (const n of S.run.nodes || []) S.detailNodes.set(nodeKey(n.id ?? n.node_id, n.iteration), { ...n, id: n.id ?? n.node_id, iteration: n.iteration || 0 });
        drawHead();
        queueTree();
      } catch (e) {
        if (!S.alive || e.status === 401) return;
        if (e.status === 404) {
          fill(headMain, h("h1", { class: "mono" }, runId), h("p", { class: "error-text" }, describeError(e)));
          S.alive = false;
          return;
        }
        toast(describeError(e), "error");
      }
    }

    async function loadInbox() {
      S.inbox = await refreshInbox();
      if (!S.alive) return;
      drawWaiting();
    }
    const onInbox = (items) => { S.inbox = items; if (S.alive) drawWaiting(); };
    inboxListeners.add(onInbox);

    function treeFromFrame(data) {
      return data && data.tree !== undefined ? data.tree : null;
    }

    async function loadTree() {
      try {
        let count = S.frames;
        if (!count) count = frameCount(await api(`/v1/runs/${enc(runId)}/frames`, { quiet: true }));
        if (!count || !S.alive) return;
        const data = await api(`/v1/runs/${enc(runId)}/frames?frame=${count - 1}`, { quiet: true });
        if (!S.alive || !data) return;
        S.tree = treeFromFrame(data);
        if (typeof data.frames === "number") S.frames = Math.max(S.frames, data.frames);
        queueTree();
        if (S.tab === "plan" && S.plan.follow) drawPlan(data);
      } catch (e) {
        if (e.status === 401) showSignIn(e);
      }
    }

    // the plan (graph view) --------------------------------------------------------------------
    async function loadPlan(frame) {
      try {
        let data;
        if (frame == null) {
          const list = await api(`/v1/runs/${enc(runId)}/frames`, { quiet: true });
          const count = frameCount(list);
          if (!count) { fill(planBox, h("p", { class: "muted" }, "This run has not rendered a plan yet.")); fill(frameBar); return; }
          data = await api(`/v1/runs/${enc(runId)}/frames?frame=${count - 1}`, { quiet: true });
        } else {
          data = await api(`/v1/runs/${enc(runId)}/frames?frame=${frame}`, { quiet: true });
        }
        if (!S.alive) return;
        drawPlan(data);
      } catch (e) {
        if (e.status === 401) { showSignIn(e); return; }
        fill(planBox, h("p", { class: "error-text" }, describeError(e)));
      }
    }

    function drawPlan(data) {
      const count = typeof data.frames === "number" ? data.frames : S.frames;
      const frame = typeof data.frame === "number" ? data.frame : count - 1;
      S.frames = count;
      S.plan.frame = frame;
      S.plan.data = data;
      const last = frame >= count - 1;
      const go = (n) => { S.plan.follow = n >= count - 1; loadPlan(n >= count - 1 ? null : n); };
      const slider = h("input", { type: "range", min: "0", max: String(Math.max(0, count - 1)), value: String(frame), "aria-label": "frame" });
      slider.addEventListener("change", () => go(Number(slider.value)));
      fill(frameBar, 
        h("button", { type: "button", disabled: frame <= 0, "aria-label": "previous frame", onclick: () => go(frame - 1) }, "◀"),
        h("span", { class: "mono", id: "frame-label" }, `frame ${frame}`, h("span", { class: "muted" }, ` (${frame + 1} of ${count})`)),
        h("button", { type: "button", disabled: last, "aria-label": "next frame", onclick: () => go(frame + 1) }, "▶"),
        count > 1 ? slider : h("span", { class: "spacer" }),
        last ? h("span", { class: "muted small" }, S.run && !TERMINAL.has(S.run.status) ? "latest · live" : "latest")
          : h("button", { type: "button", class: "chip", onclick: () => go(count - 1) }, "latest"));
      const tree = treeFromFrame(data);
      fill(planBox, tree ? planNode(tree, last, true) : h("p", { class: "muted" }, "(empty plan)"));
    }

    function planNode(node, last, root) {
      if (node.t === "task") {
        // the latest frame shows live statuses; an earlier frame shows the statuses it had then
        const status = last ? nodeState(node.id, node.it || 0, node.status).status : node.status || "pending";
        const box = h("div", { class: "g-task", dataset: { status, node: node.id }, tabindex: "0", role: "button", title: `${node.id} — ${status}` },
          h("div", { class: "g-id" }, node.id, node.it ? h("span", { class: "muted" }, ` #${node.it}`) : null),
          h("div", { class: "g-sub" }, [node.mode, node.out].filter(Boolean).join(" → ")),
          h("div", { class: "g-st" }, status));
        box.addEventListener("click", () => selectNode(node.id));
        box.addEventListener("keydown", (e) => { if (e.key === "Enter") selectNode(node.id); });
        if (node.children && node.children.length) {
          return h("div", { class: "g-box g-seq" }, box, ...node.children.map((c) => planNode(c, last)));
        }
        return box;
      }
      const kids = (node.children || []).map((c) => planNode(c, last));
      const parallel = node.t === "parallel";
      const cls = node.t === "loop" ? "g-box g-seq g-loop" : "g-box g-seq";
      const body = [];
      if (parallel) body.push(...kids);
      else kids.forEach((k, i) => { if (i) body.push(h("div", { class: "g-arrow", "aria-hidden": "true" }, "↓")); body.push(k); });
      if (root && node.t === "workflow") return h("div", { class: "g-seq g-root" }, body);
      if (parallel) {
        return h("div", { class: "g-box", dataset: { kind: node.t } }, h("div", { class: "g-label" }, groupLabel(node)), h("div", { class: "g-par" }, body));
      }
      return h("div", { class: cls, dataset: { kind: node.t } }, h("div", { class: "g-label" }, groupLabel(node)), body.length ? body : h("div", { class: "muted small" }, "(empty)"));
    }

    // periodic work -------------------------------------------------------------------------
    const tick = setInterval(() => {
      if (!S.alive) return;
      // elapsed times of running nodes and of the run
      let running = false;
      for (const row of rows.values()) if (row.dataset.status === "running" || (row.dataset.status || "").startsWith("waiting")) { running = true; break; }
      if (running) queueTree();
      if (S.run && !TERMINAL.has(S.run.status) && elapsedEl && S.run.created_at_ms) setText(elapsedEl, fmtDur(Date.now() - S.run.created_at_ms));
    }, 1000);
    const poll = setInterval(() => {
      if (!S.alive || document.hidden) return;
      if (S.run && TERMINAL.has(S.run.status)) return;
      refresh();
      if (!S.streaming) ensureStream();
    }, RUN_POLL_MS);

    // start -----------------------------------------------------------------------------------
    drawHead();
    buildTree();
    (async () => {
      await Promise.all([refresh(), loadInbox()]);
      await loadTree();
      if (!S.alive) return;
      if (S.selected != null) loadDetail(true);
      ensureStream();
    })();

    return {
      runId,
      select(id) { if (id !== S.selected) { if (id == null) { S.selected = null; buildTree(); loadDetail(); } else selectNode(id); } },
      unmount() {
        S.alive = false;
        if (S.abort) S.abort.abort();
        clearInterval(tick);
        clearInterval(poll);
        S.timers.forEach(clearTimeout);
        Object.values(soonTimers).forEach((t) => t && clearTimeout(t));
        inboxListeners.delete(onInbox);
        setConn("ok");
      },
    };
  }

  function frameCount(list) {
    if (list == null) return 0;
    if (typeof list.frames === "number") return list.frames;
    if (typeof list.count === "number") return list.count;
    const items = listOf(list, "frames", "items");
    return items.length;
  }

  // -- routing ----------------------------------------------------------------------------------

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    return { parts, params: new URLSearchParams(query || "") };
  }

  function route() {
    if (signInShown) return;
    const { parts, params } = parseHash();
    if (parts[0] === "runs" && parts[1]) {
      const nodeId = parts[2] === "nodes" && parts[3] != null ? parts[3] : null;
      if (current && current.runId === parts[1]) { current.select(nodeId); return; }
      unmountCurrent();
      current = RunPage(parts[1], nodeId);
      window.scrollTo(0, 0);
      return;
    }
    unmountCurrent();
    if (parts[0] === "inbox") current = InboxPage();
    else current = RunsPage(params);
  }

  window.addEventListener("hashchange", route);
  route();
})();
