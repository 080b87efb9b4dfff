/* A run's live events on the browser's EventSource.
 *
 * The server sends `id: <seq>` with every event, so when a connection drops the browser
 * reconnects by itself with `Last-Event-ID: <last seq>` and the server resumes right after it:
 * nothing lost, nothing repeated. The session cookie goes along (same origin), so no token is
 * ever put in the URL. Events are named by type (`event: NodeFinished`), so we listen for every
 * type the server knows (/v1/meta). `event: end` means the run is over and everything was
 * sent: we close, or the browser would reconnect.
 *
 * When the server answers an error status (401, 404, 500) the browser gives up for good; we
 * then tell the page (`onLost`, e.g. to check the session) and open a new stream after a
 * back-off, starting after the last seq we have.
 */
import { enc } from "./api.js";
import { meta } from "./meta.js";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;

/**
 * Follow `runId` from after `afterSeq`: `onEvent(event)` once per event in seq order,
 * `onEnd({status, last_seq})`, `onState("live" | "reconnecting" | "down")`, `onLost()`.
 * Returns `{close()}`.
 */
export function followRun(runId, { afterSeq = 0, onEvent, onEnd, onState = () => {}, onLost = () => {} }) {
  let lastSeq = afterSeq;
  let source = null;
  let retryTimer = null;
  let retryMs = FIRST_RETRY_MS;
  let closed = false;

  function deliver(message) {
    const event = JSON.parse(message.data);
    if (event.seq <= lastSeq) return; // never twice, even if a stream overlaps the one before
    lastSeq = event.seq;
    onEvent(event);
  }

  function open() {
    const url = `/v1/runs/${enc(runId)}/events` + (lastSeq ? `?after_seq=${lastSeq}` : "");
    source = new EventSource(url);
    source.onopen = () => { retryMs = FIRST_RETRY_MS; onState("live"); };
    for (const type of meta.eventTypes) source.addEventListener(type, deliver);
    source.onmessage = deliver; // an event without a type name, should a server send one
    source.addEventListener("end", (message) => {
      stop();
      onState("ended");
      onEnd(JSON.parse(message.data));
    });
    source.onerror = () => {
      if (closed) return;
      if (source.readyState === EventSource.CONNECTING) { onState("reconnecting"); return; } // the browser retries
      stop();
      onState("down");
      onLost();
      retryTimer = setTimeout(() => { retryTimer = null; if (!closed) open(); }, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    };
  }

  function stop() {
    if (source) source.close();
    source = null;
  }

  open();
  return {
    get lastSeq() { return lastSeq; },
    get open() { return source !== null || retryTimer !== null; },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      stop();
    },
  };
}
