/* Times, durations, numbers, errors and status badges, the same on every page. */
import { h } from "./dom.js";
import { toneOf } from "./meta.js";

const pad = (n) => String(n).padStart(2, "0");

/** A clock time today, a date and time on other days. */
export function fmtTime(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return d.toDateString() === new Date().toDateString() ? time : `${fmtDate(d)} ${time}`;
}

/** Always the date and the time (for tooltips). */
export function fmtFull(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  return `${fmtDate(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** 0.4s, 12s, 3m 05s, 2h 07m, 1d 3h. */
export function fmtDur(ms) {
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

export function fmtNum(n) {
  return n == null ? "–" : Number(n).toLocaleString("en-US");
}

export function fmtUsd(n) {
  return "$" + Number(n).toFixed(4);
}

/** One line of at most `max` characters of any value. */
export function short(value, max = 160) {
  let s = typeof value === "string" ? value : JSON.stringify(value);
  if (s == null) return "";
  s = s.replace(/\s+/g, " ");
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

/** A run error (`{type, message, ...}`) or a plain string as one line. */
export function errorMessage(err) {
  if (err == null) return null;
  if (typeof err === "string") return err;
  const kind = err.type && err.type !== "RunError" ? err.type + ": " : "";
  return kind + (err.message || JSON.stringify(err));
}

/** "waiting-approval" → "Waiting approval". */
export function statusLabel(status) {
  const s = String(status || "").replace(/-/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The coloured status pill; its colour follows `data-tone` (see app.css). */
export function badge(status) {
  return h("span", { class: "badge", dataset: { status, tone: toneOf(status) } }, h("span", { class: "dot" }), status || "unknown");
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function runHref(runId, nodeId) {
  return "#/runs/" + encodeURIComponent(runId) + (nodeId != null ? "/nodes/" + encodeURIComponent(nodeId) : "");
}
