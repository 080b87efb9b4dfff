/* smithers dashboard: native ES modules, no build step, no external resources.
 *
 * Pages (hash routing): #/ runs list, #/runs/ID a run (live node tree, plan, events, node
 * detail, actions), #/runs/ID/nodes/NODE the same with a node opened, #/inbox everything that
 * waits for a person. All text is inserted as text, never as HTML.
 */
import { describeError, onUnauthorized } from "./api.js";
import { fill, h } from "./dom.js";
import { pollInbox } from "./inbox-feed.js";
import { loadMeta } from "./meta.js";
import { InboxPage } from "./page-inbox.js";
import { RunsPage } from "./page-runs.js";
import { RunPage } from "./run-page.js";
import { showSignIn, signingIn } from "./signin.js";

const app = document.getElementById("app");
let current = null; // the mounted page: {unmount(), runId?, select(nodeId)?}

function unmountCurrent() {
  if (current) current.unmount();
  current = null;
}

function parseHash() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
  return { parts, params: new URLSearchParams(query || "") };
}

function route() {
  if (signingIn()) return;
  const { parts, params } = parseHash();
  if (parts[0] === "runs" && parts[1]) {
    const nodeId = parts[2] === "nodes" && parts[3] != null ? parts[3] : null;
    if (current && current.runId === parts[1]) { current.select(nodeId); return; }
    unmountCurrent();
    current = RunPage(app, parts[1], nodeId);
    window.scrollTo(0, 0);
    return;
  }
  unmountCurrent();
  current = parts[0] === "inbox" ? InboxPage(app) : RunsPage(app, params);
}

onUnauthorized(() => {
  unmountCurrent();
  showSignIn(app, route);
});

try {
  await loadMeta();
  pollInbox(signingIn);
  window.addEventListener("hashchange", route);
  route();
} catch (e) {
  fill(app, h("p", { class: "error-text" }, "The dashboard cannot start: ", describeError(e)));
}
