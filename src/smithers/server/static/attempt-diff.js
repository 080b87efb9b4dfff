/* What each attempt changed in the working tree, in the node detail panel: the files (added,
 * modified, deleted) with their +/- line counts, and the patch on demand
 * (GET /v1/runs/{id}/nodes/{node}/diff?iteration=I&attempt=N; docs/time-travel.md). */
import { api, describeError, enc } from "./api.js";
import { fill, h } from "./dom.js";

const MARK = { added: "A", modified: "M", deleted: "D" };

function filesTable(files) {
  return h("div", { class: "table-wrap" }, h("table", { class: "diff-files" },
    h("thead", null, h("tr", null, ["", "file", "+", "−"].map((t) => h("th", null, t)))),
    h("tbody", null, files.map((f) => h("tr", { class: "diff-file", dataset: { path: f.path, status: f.status } },
      h("td", { class: "mono diff-mark", title: f.status }, MARK[f.status] || "?"),
      h("td", { class: "mono" }, f.path),
      h("td", { class: "diff-add" }, f.additions == null ? "binary" : "+" + f.additions),
      h("td", { class: "diff-del" }, f.deletions == null ? "" : "−" + f.deletions))))));
}

function patchLines(patch) {
  const pre = h("pre", { class: "diff-patch" });
  for (const line of patch.split("\n")) {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "meta" : line[0] === "+" ? "add" : line[0] === "-" ? "del" : line.startsWith("@@") ? "hunk" : "";
    pre.append(h("span", { class: kind ? "diff-" + kind : null }, line + "\n"));
  }
  return pre;
}

/** One attempt's changes, loaded when its section opens (the newest attempt's opens at once). */
function attemptSection(runId, nodeId, iteration, attempt, open) {
  const body = h("div", { class: "diff-body" }, h("p", { class: "muted small" }, "Loading…"));
  const section = h("details", { class: "attempt-diff", dataset: { attempt: attempt.attempt }, open: open || null },
    h("summary", null, `files changed · attempt ${attempt.attempt}`), body);
  let loaded = false;
  async function load() {
    if (loaded) return;
    loaded = true;
    const q = `iteration=${enc(iteration)}&attempt=${enc(attempt.attempt)}`;
    try {
      const diff = await api(`/v1/runs/${enc(runId)}/nodes/${enc(nodeId)}/diff?${q}`);
      const plus = diff.files.reduce((n, f) => n + (f.additions || 0), 0);
      const minus = diff.files.reduce((n, f) => n + (f.deletions || 0), 0);
      fill(body,
        diff.files.length
          ? [h("div", { class: "small diff-summary" }, `${diff.files.length} file${diff.files.length === 1 ? "" : "s"} changed, `,
              h("span", { class: "diff-add" }, "+" + plus), " ", h("span", { class: "diff-del" }, "−" + minus)),
             filesTable(diff.files),
             h("details", { class: "diff-patch-box" }, h("summary", null, "patch"), patchLines(diff.patch || ""))]
          : h("p", { class: "muted small" }, "No files changed."));
    } catch (e) {
      fill(body, h("p", { class: "error-text small" }, describeError(e)));
    }
  }
  section.addEventListener("toggle", () => { if (section.open) load(); });
  if (open) load();
  return section;
}

/** The changes of an iteration's attempts that have a snapshot after them (newest first), or null. */
export function attemptDiffs(runId, nodeId, iteration, attempts) {
  const shown = attempts.filter((a) => a.snapshot_after).slice().reverse();
  if (!shown.length) return null;
  return h("div", { class: "attempt-diffs" }, h("h3", null, "changes"),
    shown.map((a, i) => attemptSection(runId, nodeId, iteration, a, i === 0)));
}
