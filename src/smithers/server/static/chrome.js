/* The frame around every page: the connection light, the toast, the nav and the inbox count. */
import { setText } from "./dom.js";

const connEl = document.getElementById("conn");
const toastEl = document.getElementById("toast");
const inboxCountEl = document.getElementById("inbox-count");

const CONN_TITLES = { live: "live: following events", down: "cannot reach the server", ok: "connected" };

/** "live" (an event stream is open), "down" (the server is unreachable) or "ok". */
export function setConn(state) {
  connEl.dataset.state = state;
  connEl.className = "conn" + (state === "live" || state === "down" ? " " + state : "");
  connEl.title = CONN_TITLES[state] || CONN_TITLES.ok;
}

export const connState = () => connEl.dataset.state || "ok";

let toastTimer = null;
export function toast(message, kind) {
  setText(toastEl, message);
  toastEl.className = "toast" + (kind === "error" ? " error" : "");
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toastEl.hidden = true; }, kind === "error" ? 7000 : 3500);
}

export function setNav(which) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === which);
}

export function setInboxCount(n) {
  inboxCountEl.hidden = n === 0;
  setText(inboxCountEl, n);
}
