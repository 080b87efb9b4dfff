/* A node's agent transcript (its AgentTurn, AgentReply, AgentEvent and TokenUsageReported
 * events) and its token usage. */
import { h } from "./dom.js";
import { fmtNum, fmtUsd, short } from "./format.js";

const USAGE_FIELDS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"];

/** Token usage summed over the node's TokenUsageReported events (every turn of every attempt). */
export function usageOf(transcript) {
  const reports = transcript.filter((e) => e.type === "TokenUsageReported");
  if (!reports.length) return null;
  const total = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: null };
  for (const e of reports) {
    const p = e.payload || {};
    for (const k of USAGE_FIELDS) total[k] += Number(p[k] || 0);
    if (p.cost_usd != null) total.cost_usd = (total.cost_usd || 0) + Number(p.cost_usd);
  }
  return total;
}

export function usageBox(usage) {
  const fact = (label, value) => h("span", null, label + " ", h("b", null, value));
  return h("div", { class: "usage", id: "usage" },
    fact("input", fmtNum(usage.input_tokens)),
    fact("output", fmtNum(usage.output_tokens)),
    usage.cache_read_tokens ? fact("cache read", fmtNum(usage.cache_read_tokens)) : null,
    usage.cache_write_tokens ? fact("cache write", fmtNum(usage.cache_write_tokens)) : null,
    usage.cost_usd != null ? fact("cost", fmtUsd(usage.cost_usd)) : null);
}

const item = (who, ...body) => h("li", null, h("div", { class: "who" }, who), ...body);

function agentEventItem(p) {
  const d = p.data || {};
  switch (p.kind) {
    case "text": return item("agent", h("div", { style: "white-space:pre-wrap" }, d.text || ""));
    case "tool_use": return item("tool call", h("div", { class: "tool" }, `→ ${d.name || "?"} `, short(d.input, 400)));
    case "tool_result": return item(d.is_error ? "tool error" : "tool result", h("div", { class: "tool" }, "← ", short(d.output, 400)));
    case "thinking": return item("thinking", h("div", { class: "muted", style: "white-space:pre-wrap" }, short(d.text || d.thinking || d, 600)));
    case "error": return item("agent error", h("div", { class: "error-text" }, d.message || short(d)));
    default: return item(p.kind || "event", h("div", { class: "tool muted" }, short(d, 300)));
  }
}

export function transcriptItem(e) {
  const p = e.payload || {};
  const where = e.attempt ? `attempt ${e.attempt}` : "";
  switch (e.type) {
    case "AgentTurn":
      return item(`prompt · turn ${p.turn ?? "?"} ${p.kind ? "(" + p.kind + ")" : ""} → ${p.agent || "agent"} ${where}`, h("pre", null, p.prompt || ""));
    case "AgentReply":
      return item(`reply · ${p.outcome || ""} ${where}`, h("pre", null, p.text || ""),
        p.errors ? h("div", { class: "error-text small" }, "validation errors: ",
          h("pre", null, typeof p.errors === "string" ? p.errors : JSON.stringify(p.errors, null, 2))) : null);
    case "AgentEvent":
      return agentEventItem(p);
    case "TokenUsageReported":
      return item(`usage · ${p.model || p.agent || ""}`,
        h("div", { class: "small" }, `in ${fmtNum(p.input_tokens)} · out ${fmtNum(p.output_tokens)}` + (p.cost_usd != null ? ` · ${fmtUsd(p.cost_usd)}` : "")));
    default:
      return item(e.type || "event", h("div", { class: "tool muted" }, short(p, 300)));
  }
}
