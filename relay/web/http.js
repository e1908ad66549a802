/*
 * Tolk page module: talking to the Tolk server over HTTP, shared by the
 * listener, booth and organiser pages.
 *
 * This file owns: fetch with a sentence instead of a network TypeError
 * (request), turning a non-success response (application/problem+json) into
 * an HttpError with the server's detail, Retry-After parsing, which errors
 * are worth retrying (isPermanent), the retry backoff steps, and the house
 * style for sentences shown to people (sentence).
 */

// Seconds to wait before the 1st, 2nd, … retry; the last step repeats.
export const BACKOFF_S = [1, 2, 4, 8, 15];

const UNREACHABLE = "Cannot reach the Tolk server.";

// An Error whose message is what the page shows; detail is the server's own
// text, status the HTTP status (0: no answer), retryAfter seconds or null.
export class HttpError extends Error {
  constructor(message, { status = 0, detail = message, retryAfter = null, network = false } = {}) {
    super(message);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.network = network;
  }

  toString() {
    return this.message;
  }
}

// fetch(), rejecting with an HttpError (network: true) the page can show
// when the server cannot be reached.
export async function request(url, options, unreachable) {
  try {
    return await fetch(url, options);
  } catch (_) {
    throw new HttpError(unreachable || UNREACHABLE, { network: true });
  }
}

// Turns a non-success response (application/problem+json) into an HttpError.
//   fallback  {status: detail} for answers without a detail of their own
//   raw       the message is the detail as the server wrote it; otherwise
//             the detail as a sentence()
export async function problemFrom(res, options) {
  const { fallback = {}, raw = false } = options || {};
  let detail = "";
  try {
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      const p = await res.json();
      detail = (p && (p.detail || p.title)) || "";
    } else {
      detail = (await res.text()).trim().slice(0, 300);
    }
  } catch (_) { /* keep the generic sentence */ }
  if (!detail) detail = fallback[res.status] || "";
  if (!detail) detail = `The server answered ${res.status} ${res.statusText || ""}`.trim();
  return new HttpError(raw ? detail : sentence(detail), {
    status: res.status,
    detail,
    retryAfter: parseRetryAfter(res.headers.get("Retry-After")),
  });
}

// Retry-After as whole seconds (at least 1), from delta-seconds or an HTTP date.
export function parseRetryAfter(value) {
  if (!value) return null;
  const secs = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(secs) ? Math.max(1, Math.ceil(secs)) : null;
}

// Client errors will not go away by retrying; everything else might.
export function isPermanent(err) {
  return err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
}

// Seconds to wait before retry number `attempt` (0 = the first).
export function backoffSeconds(attempt) {
  return BACKOFF_S[Math.min(attempt, BACKOFF_S.length - 1)];
}

// Successive waits of one thing that retries; reset() once it works again.
// Seconds stretched by up to a quarter, at random: retries from many clients spread out.
export function jittered(seconds) {
  return seconds * (1 + Math.random() / 4);
}

export class Backoff {
  constructor() {
    this.attempt = 0;
  }

  next() {
    const secs = backoffSeconds(this.attempt);
    this.attempt += 1;
    return secs;
  }

  reset() {
    this.attempt = 0;
  }
}

// Text as a sentence: trimmed, ending in a full stop (unless it already ends
// in one, "!", "?" or "…"); capital: its first letter upper case too.
export function sentence(text, capital) {
  text = String(text == null ? "" : text).trim();
  if (!text) return "";
  if (capital) text = text[0].toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(text) ? text : text + ".";
}
