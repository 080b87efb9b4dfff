/* Building and updating the DOM. Text only: nothing is ever parsed as HTML. */

/** `h("li", {class, text, dataset, onclick, ...}, ...children)`: an element; null/false children are skipped. */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") { for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = String(dv); }
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  return add(el, kids);
}

/** Append children (nested arrays are flattened; strings become text nodes). */
export function add(el, kids) {
  for (const kid of [kids].flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...kids) {
  el.replaceChildren();
  return add(el, kids);
}

/** Set text only when it changed (no needless layout, selection kept). */
export function setText(el, text) {
  const s = text == null ? "" : String(text);
  if (el.textContent !== s) el.textContent = s;
}

/**
 * A list whose children follow `items`, one element per key: elements are created once, then
 * only updated and moved, so focus, selection and running animations survive every redraw.
 *
 *   const draw = keyedList(ul, { key: (item) => item.id, create: (item) => h("li"), update: (el, item) => ... });
 *   draw(items);
 */
export function keyedList(parent, { key, create, update }) {
  let shown = new Map();
  return function draw(items) {
    const next = new Map();
    let cursor = parent.firstChild;
    for (const item of items) {
      const k = key(item);
      if (next.has(k)) throw new Error(`keyedList: duplicate key ${k}`);
      const el = shown.get(k) || create(item);
      next.set(k, el);
      if (update) update(el, item);
      if (el === cursor) cursor = cursor.nextSibling;
      else parent.insertBefore(el, cursor);
    }
    for (const [k, el] of shown) if (!next.has(k)) el.remove();
    shown = next;
  };
}

/** `fn` once on the next animation frame, however often it is asked for before then. */
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

/** Named calls coalesced over `ms`: `later("run", refresh, 150)` runs refresh once. `cancel()` stops all. */
export function coalescer() {
  const timers = new Map();
  return {
    later(name, fn, ms) {
      if (timers.has(name)) return;
      timers.set(name, setTimeout(() => { timers.delete(name); fn(); }, ms));
    },
    cancel() { for (const t of timers.values()) clearTimeout(t); timers.clear(); },
  };
}
