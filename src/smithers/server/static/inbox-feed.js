/* What waits for a person, across runs (GET /v1/inbox): polled every few seconds, shown as the
 * count in the top bar, and handed to whichever page listens. */
import { api, listOf } from "./api.js";
import { setInboxCount } from "./chrome.js";

const POLL_MS = 5000;

let items = [];
const listeners = new Set();

/** Fetch the inbox now; every listener gets the items. Returns them (the last known on error). */
export async function refreshInbox() {
  try {
    items = listOf(await api("/v1/inbox", { quiet: true }), "items");
  } catch (e) {
    return items;
  }
  setInboxCount(items.length);
  for (const listener of listeners) listener(items);
  return items;
}

/** Call `listener(items)` on every refresh; returns the function that stops it. */
export function onInbox(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Poll while the tab is visible and `paused()` says no. */
export function pollInbox(paused) {
  setInterval(() => { if (!paused() && !document.hidden) refreshInbox(); }, POLL_MS);
}
