/* The HTTP API: JSON in and out, errors as ApiError with the server's envelope. Auth is the
 * HttpOnly session cookie (POST /v1/session), sent by fetch and EventSource alike: the token
 * never sits in JavaScript, a URL or storage. */
import { connState, setConn } from "./chrome.js";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

let unauthorized = () => {};

/** What to do when the server says 401 (show the sign-in form); set once by main.js. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export const enc = encodeURIComponent;

/** `api(path, {method, body, quiet})`: the parsed JSON; throws ApiError. `quiet`: a 401 shows no sign-in. */
export async function api(path, { method = "GET", body, quiet = false } = {}) {
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
  if (connState() !== "live") setConn("ok");
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || "HTTP_" + res.status, e.message || res.statusText || "request failed", e.details);
    if (res.status === 401 && !quiet) unauthorized(err);
    throw err;
  }
  return data;
}

/** The list in a response: the response itself, or its first array field among `keys`. */
export function listOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of keys) if (data && Array.isArray(data[k])) return data[k];
  return [];
}

/** An error as one line for people, with the server's hint when it gave one. */
export function describeError(err) {
  const hint = err && err.details && err.details.hint ? ` (${err.details.hint})` : "";
  return (err && err.message ? err.message : String(err)) + hint;
}
