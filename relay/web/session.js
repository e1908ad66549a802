/*
 * Tolk page module: the WHIP / WHEP media session, shared by the listener
 * page (WHEP, receive) and the booth page (WHIP, send and receive).
 *
 * This file owns the session lifecycle: one session at a time, the offer
 * (after the page added its transceivers), the wait for ICE gathering, the
 * POST of the offer and the SDP answer (201 and a Location), the connect
 * timeout, the grace period of a "disconnected" connection, the DELETE of the
 * server's resource when a session ends, and the countdown to the next
 * attempt with backoff. A live session whose media stalls for a second asks
 * the server whether it still knows it (GET of its resource): a 404 (the relay
 * restarted, or dropped the session) reconnects at once instead of waiting for
 * ICE to notice, as does silence from another node of a cluster that the
 * session was placed on; while the server does not answer at all, the countdown to
 * the next attempt ends as soon as it answers again. When the page is shown again after
 * being hidden (a phone unlocked), revive() reconnects a session lost meanwhile at once.
 * What a session carries, what the status line says and whether a failure is retried stay
 * with the page, through the hooks. lowPlayoutDelay() asks the browser to play received audio
 * as early as the network allows.
 */
import { Backoff, HttpError, jittered, request } from "./http.js";
import { until } from "./page.js";

const ICE_GATHER_MAX_MS = 1000;
const CONNECT_TIMEOUT_MS = 15000;
const DISCONNECT_GRACE_MS = 3000;
const WATCH_EVERY_MS = 250;
const STALL_MS = 750;
const PROBE_EVERY_MS = 500;
const PROBE_TIMEOUT_MS = 1000;

/*
 * hooks (all functions):
 *   headers(extra)        request headers for the POST and the DELETE
 *   problem(res)          → Error for a POST the server refused
 *   prepare(s, pc)        add the transceivers (their order is the contract
 *                         with the server) and pc.ontrack
 *   ready(s)              optional: → a Promise that settles when the page
 *                         can play what it receives (its AudioContext
 *                         runs); the offer waits for it, see connect()
 *   posting(s)            optional: the offer is about to be sent
 *   answered(s)           optional: the answer is applied
 *   connected(s)          the connection is up (the backoff is reset)
 *   status(state, text, quiet)  the page's status line: "reconnecting" while
 *                         interrupted and while counting down to a retry
 *   failed(err)           the current session failed and has been ended: the
 *                         page gives up or calls retry()
 *   restart()             the countdown is over: start a new session
 *   ended(s)              session s is over (detach its tracks)
 */
export class SessionLink {
  constructor(hooks) {
    this.hooks = hooks;
    this.current = null; // the current session, see begin()
    this.backoff = new Backoff();
    this.retryTimer = 0;
  }

  // Ends any session (and a pending retry) and makes a new one current: an
  // object with the page's own fields besides the link's. connect() it next.
  begin(fields) {
    this.stop();
    const s = Object.assign({
      pc: null,
      url: null, // the server's resource (Location), DELETEd at the end
      closed: false,
      released: false,
      connectTimer: 0,
      graceTimer: 0,
      watchTimer: 0,
      probing: false,
    }, fields);
    this.current = s;
    return s;
  }

  // Offer, ICE gathering, POST to url, answer. Failures go to the page's
  // failed() hook (once, and only while s is the current session). The
  // offer is sent only once the page's ready() promise settled: Firefox
  // only takes audio out of a receiver's jitter buffer while the page's
  // audio graph runs, and the packets that arrive before (an AudioContext
  // takes up to seconds to open the audio device) are played late, the
  // jitter buffer draining them only slowly (docs/browsers.md, "Booth
  // playout delay").
  async connect(s, url) {
    const h = this.hooks;
    try {
      const ready = h.ready ? Promise.resolve(h.ready(s)).catch(() => {}) : null;
      const pc = (s.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" }));
      h.prepare(s, pc);
      pc.onconnectionstatechange = () => this.onConnectionState(s);
      pc.oniceconnectionstatechange = () => this.onConnectionState(s);

      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc, ICE_GATHER_MAX_MS);
      await ready;
      if (s.closed) return;

      if (h.posting) h.posting(s);
      const res = await request(url, {
        method: "POST",
        headers: h.headers({ "Content-Type": "application/sdp", Accept: "application/sdp" }),
        body: pc.localDescription.sdp,
      });
      if (res.status !== 201) throw await h.problem(res);
      const loc = res.headers.get("Location");
      if (loc) s.url = new URL(loc, res.url).href;
      const answer = await res.text();
      if (s.closed) {
        this.release(s);
        return;
      }
      s.connectTimer = setTimeout(
        () => this.fail(s, new HttpError("The audio connection could not be established.")),
        CONNECT_TIMEOUT_MS);
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      if (s.closed) return;
      if (h.answered) h.answered(s);
    } catch (err) {
      this.fail(s, err);
    }
  }

  onConnectionState(s) {
    if (s !== this.current) return;
    const state = connectionState(s.pc);
    if (state === "connected") {
      clearTimeout(s.connectTimer);
      clearTimeout(s.graceTimer);
      s.graceTimer = 0;
      this.backoff.reset();
      this.watch(s);
      this.hooks.connected(s);
    } else if (state === "disconnected") {
      this.probe(s);
      if (s.graceTimer) return;
      this.hooks.status("reconnecting", "Connection interrupted, waiting for it to recover…");
      s.graceTimer = setTimeout(
        () => this.fail(s, new HttpError("The connection was lost.")), DISCONNECT_GRACE_MS);
    } else if (state === "failed") {
      this.fail(s, new HttpError("The connection was lost."));
    }
  }

  // Watches the media arriving; when it stalls, probe() asks the server about s.
  watch(s) {
    if (s.watchTimer) return;
    let last = -1;
    let still = 0;
    s.watchTimer = setInterval(async () => {
      if (s !== this.current || !s.pc) return;
      let packets = 0;
      try {
        (await s.pc.getStats()).forEach((r) => {
          if (r.type === "inbound-rtp") packets += r.packetsReceived || 0;
        });
      } catch (_) { return; }
      if (packets !== last) {
        last = packets;
        still = 0;
        return;
      }
      still += WATCH_EVERY_MS;
      if (still >= STALL_MS) this.probe(s);
    }, WATCH_EVERY_MS);
  }

  // Does the server still know session s? 404: it does not (a restart), so
  // reconnect now; 2xx: it is only quiet. No answer within PROBE_TIMEOUT_MS
  // from a session the cluster placed on another node than the page's: that
  // node is gone, and the page's own node places the listener on another one,
  // so reconnect at once; from the page's own node: ask again later (the next
  // stall or ICE decides).
  async probe(s) {
    if (!s.url || s.probing || s !== this.current) return;
    s.probing = true;
    try {
      const res = await fetch(s.url, {
        method: "GET", headers: this.hooks.headers({}), cache: "no-store",
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      if (res.status === 404 && s === this.current) {
        s.released = true; // nothing left to DELETE
        this.fail(s, new HttpError("The server restarted."));
      }
    } catch (_) {
      if (s === this.current && new URL(s.url).origin !== location.origin) {
        s.released = true;
        this.fail(s, new HttpError("The server this page was sent to does not answer.", { retryAfter: 0 }));
      }
    } finally {
      s.probing = false;
    }
  }

  // Ends session s after an error; the page decides between giving up and retrying.
  fail(s, err) {
    if (s !== this.current) return; // already replaced or stopped
    this.end();
    this.hooks.failed(err);
  }

  // Counts down to the next attempt, from the server's Retry-After or else
  // the next backoff step; text(n) is the status line with n seconds left.
  retry(err, text) {
    if (err && err.retryAfter === 0) {
      // Another node is there to take the session (see probe()): now.
      this.clearRetry();
      this.hooks.status("reconnecting", `${err.message} Reconnecting…`, false);
      this.hooks.restart();
      return;
    }
    // Spread out: a hall of listeners refused at once must not come back at once.
    const seconds = jittered((err && err.retryAfter) || this.backoff.next());
    this.clearRetry();
    let left = Math.max(1, Math.ceil(seconds));
    if (this.lastUrl) this.watchServer(this.lastUrl);
    const tick = (first) => {
      if (left <= 0) {
        this.retryTimer = 0;
        this.hooks.restart();
        return;
      }
      this.hooks.status("reconnecting", text(left), !first);
      left -= 1;
      this.retryTimer = setTimeout(() => tick(false), 1000);
    };
    tick(true);
  }

  // During a countdown: as soon as the server answers anything at the last
  // session's address, skip the rest of the countdown.
  watchServer(url) {
    clearInterval(this.serverTimer);
    this.serverTimer = setInterval(async () => {
      if (!this.retryTimer) {
        clearInterval(this.serverTimer);
        return;
      }
      try {
        await fetch(url, { method: "GET", headers: this.hooks.headers({}), cache: "no-store" });
      } catch (_) { return; }
      if (!this.retryTimer) return;
      this.clearRetry();
      this.hooks.restart();
    }, PROBE_EVERY_MS);
  }

  clearRetry() {
    clearTimeout(this.retryTimer);
    clearInterval(this.serverTimer);
    this.retryTimer = 0;
  }

  // The page is shown again (a phone unlocked, a tab back): a session whose
  // connection was lost meanwhile, or a countdown to the next attempt (its
  // timers may have been held back while hidden), starts again now; a live
  // one is asked about (probe) if its media stalled. Returns whether
  // anything is under way (a session or a countdown).
  revive() {
    if (this.retryTimer) {
      this.clearRetry();
      this.hooks.restart();
      return true;
    }
    const s = this.current;
    if (!s) return false;
    const state = s.pc ? connectionState(s.pc) : "new";
    if (state === "failed" || state === "closed") {
      this.fail(s, new HttpError("The connection was lost while the page was in the background.", { retryAfter: 0 }));
    } else if (state === "disconnected" || state === "connected") {
      this.probe(s);
    }
    return true;
  }

  // No session and no retry.
  stop() {
    this.clearRetry();
    this.end();
  }

  end() {
    const s = this.current;
    this.current = null;
    if (!s) return;
    s.closed = true;
    if (s.url) this.lastUrl = s.url;
    clearTimeout(s.connectTimer);
    clearTimeout(s.graceTimer);
    clearInterval(s.watchTimer);
    if (s.pc) {
      s.pc.ontrack = s.pc.onconnectionstatechange = s.pc.oniceconnectionstatechange = null;
      try { s.pc.close(); } catch (_) { /* already closed */ }
    }
    this.release(s);
    this.hooks.ended(s);
  }

  // DELETE the server's resource once; errors don't matter.
  release(s) {
    if (!s.url || s.released) return;
    s.released = true;
    fetch(s.url, { method: "DELETE", headers: this.hooks.headers({}), keepalive: true }).catch(() => {});
  }
}

function iceGatheringDone(pc, maxMs) {
  return until(pc, "icegatheringstatechange", () => pc.iceGatheringState === "complete", maxMs);
}

// Asks the browser to play what these RTCRtpReceivers get as early as the
// network allows: no jitter buffer target of the page's own (jitterBufferTarget,
// Chromium 114+, Firefox, Safari 18.4+) and the older playoutDelayHint (Chromium).
// Both are only hints: the browser's jitter buffer still adapts to the jitter
// it sees. Returns the settings taken, for the test hooks.
export function lowPlayoutDelay(receivers) {
  const taken = [];
  for (const r of receivers) {
    if (!r) continue;
    for (const key of ["jitterBufferTarget", "playoutDelayHint"]) {
      if (!(key in r)) continue;
      try {
        r[key] = 0;
        taken.push(key);
      } catch (_) { /* refused */ }
    }
  }
  return [...new Set(taken)];
}

// A receiver's jitter buffer (its inbound-rtp stats), ms per sample played:
// the average delay so far, and the target and minimum delay; null where the
// browser does not say.
export async function jitterBuffer(receiver) {
  const out = { average_ms: null, target_ms: null, minimum_ms: null };
  try {
    (await receiver.getStats()).forEach((r) => {
      const n = r.jitterBufferEmittedCount;
      if (r.type !== "inbound-rtp" || !(n > 0)) return;
      const per = (v) => (typeof v === "number" ? Math.round((v / n) * 10000) / 10 : null);
      out.average_ms = per(r.jitterBufferDelay);
      out.target_ms = per(r.jitterBufferTargetDelay);
      out.minimum_ms = per(r.jitterBufferMinimumDelay);
    });
  } catch (_) { /* the browser does not say */ }
  return out;
}

// connectionState, falling back to the ICE state on older browsers.
export function connectionState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const ice = pc.iceConnectionState;
  return ice === "completed" ? "connected" : ice;
}
