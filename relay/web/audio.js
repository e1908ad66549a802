/*
 * Tolk page module: WebAudio, shared by the listener and booth pages.
 *
 * This file owns: the page's AudioContext (created on first use with the
 * lowest output latency, resumed, whether the browser's autoplay policy holds
 * it back until a gesture, waited for before a session sends its offer
 * (started()), and resumed again when the page comes back: a
 * phone unlocked, a tab shown again, iOS's "interrupted" state over), playing
 * a received WebRTC track through WebAudio (TrackPlayer, with an analyser
 * before any gain) or, without WebAudio, through its media element, volume
 * gains and the 0–100 % sliders that set them, and levels: dBFS of an
 * analyser's newest samples and the level bar.
 * The pages build their own graphs and meters from these parts.
 */
import { until } from "./page.js";

export const FFT_SIZE = 8192; // analysers of received tracks (meters, tone measurement)
export const SILENCE_DB = -60; // what the meters show as silence
const METER_INTERVAL_MS = 50;
const START_MAX_MS = 3000; // see started(): how long a session waits for the context

/*
 * The page's AudioContext. hooks (functions):
 *   build(ctx)        wire the page's graph, once
 *   tick()            the meters, every 50 ms once the context exists
 *   wanted()          the page wants sound now (else a suspended context
 *                     needs no gesture)
 *   gestureNeeded()   needsGesture changed
 *   woke()            optional: the page is shown again (unlocked, tab
 *                     back, restored from the back/forward cache)
 *
 * Where the page is hidden (a locked phone, a tab in the background) the
 * browser may suspend the context (iOS: "interrupted"); when the page is
 * shown again the context is resumed, and where that needs a gesture the
 * page's prompt says so (needsGesture).
 */
export class PageAudio {
  constructor(hooks) {
    this.hooks = hooks;
    this.ctx = null;
    this.needsGesture = false; // held back by the autoplay policy (or not resumed after a lock)
    this.unsupported = false; // no WebAudio at all: the players' media elements play
    this.ran = false; // the context has been running (see started())
    this.prompts = 0; // times the page asked for a gesture (tests)
    const wake = () => {
      if (document.visibilityState === "hidden") return;
      this.resume();
      if (this.hooks.woke) this.hooks.woke();
    };
    document.addEventListener("visibilitychange", wake);
    window.addEventListener("pageshow", (e) => { if (e.persisted) wake(); });
    document.addEventListener("resume", wake); // Page Lifecycle: frozen → active
  }

  // Creates the context on first use and resumes it (called on a user
  // gesture or by ?autoplay=1). Returns the context, or null without WebAudio.
  ensure() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      this.ctx = Ctx ? newContext(Ctx) : null;
      if (!this.ctx) {
        this.unsupported = true;
        return null;
      }
      this.hooks.build(this.ctx);
      this.ctx.addEventListener("statechange", () => this.onState());
      setInterval(this.hooks.tick, METER_INTERVAL_MS);
    }
    this.resume();
    // Without a user gesture resume() stays pending; look again shortly. Where
    // the browser says it allows sound, later: Firefox takes 1-1.8 s to open
    // its audio device, and the prompt would flash up meanwhile.
    setTimeout(() => this.check(), autoplayAllowed(this.ctx) ? START_MAX_MS : 600);
    return this.ctx;
  }

  // Resolves once a new context first runs (the browser plays what the graph
  // gets; opening the audio device may take a second or more), after maxMs
  // at the latest, and at once without a context, once it ran (later
  // suspensions, a locked phone, are not waited for) or where only a gesture
  // would start it (the autoplay policy, where the browser says: Firefox).
  started(maxMs = START_MAX_MS) {
    const ctx = this.ctx;
    if (!ctx || this.ran || ctx.state === "running" || ctx.state === "closed" || autoplayDisallowed(ctx)) {
      return Promise.resolve();
    }
    return until(ctx, "statechange", () => ctx.state === "running", maxMs);
  }

  resume() {
    if (this.ctx && this.ctx.state !== "running" && this.ctx.state !== "closed") {
      this.ctx.resume().then(() => this.check(), () => this.check());
    }
  }

  // iOS interrupts the context (a call, the screen locked) and may not
  // resume it by itself: try while the page is shown, else wait for wake.
  onState() {
    if (this.ctx.state === "running") this.ran = true;
    if (this.ctx.state === "interrupted" && document.visibilityState !== "hidden") this.resume();
    this.check();
  }

  check() {
    const held = Boolean(this.ctx) && (this.ctx.state === "suspended" || this.ctx.state === "interrupted");
    this.blocked(held && this.hooks.wanted());
  }

  // Sound is held back (or no longer): the page's prompt follows.
  blocked(yes) {
    if (yes === this.needsGesture) return;
    this.needsGesture = yes;
    if (yes) this.prompts += 1;
    this.hooks.gestureNeeded();
  }

  // On a user gesture: resume the context and the players' media elements.
  unlock(players) {
    this.resume();
    for (const p of players) p.replay(this);
  }
}

// Does the autoplay policy hold ctx back until a gesture? Only where the
// browser says (navigator.getAutoplayPolicy: Firefox); else false.
function autoplayDisallowed(ctx) {
  return autoplayPolicy(ctx) === "disallowed";
}

// Does the browser say ctx may play without a gesture? (Firefox as it comes
// does not hold WebAudio back; elsewhere unknown: false.)
function autoplayAllowed(ctx) {
  return autoplayPolicy(ctx) === "allowed";
}

function autoplayPolicy(ctx) {
  try {
    return typeof navigator.getAutoplayPolicy === "function" ? navigator.getAutoplayPolicy(ctx) : null;
  } catch (_) {
    return null;
  }
}

// An AudioContext asking for the lowest output latency the device allows;
// null where it cannot be made.
function newContext(Ctx) {
  try {
    return new Ctx({ latencyHint: "interactive" });
  } catch (_) {
    try { return new Ctx(); } catch (_) { return null; }
  }
}

/*
 * A received track played through WebAudio. A muted <audio> element plays it
 * (Chromium only feeds remote WebRTC audio to WebAudio when a media element
 * plays it), in a MediaStream of its own (given a stream holding two tracks,
 * createMediaStreamSource() would pick one of them); its source feeds the
 * page's graph and, with analyse, an analyser before any gain. Without
 * WebAudio (ctx null) the element itself plays, at the level output() sets
 * (its volume where the browser lets a page set it, else only muted or not).
 */
export class TrackPlayer {
  constructor(el, analyse) {
    this.el = el;
    this.el.muted = true;
    this.analyse = Boolean(analyse);
    this.track = null;
    this.source = null;
    this.analyser = null;
    this.buf = null; // see timeDomain()
    this.level = 1; // without WebAudio, see output()
  }

  attach(ctx, track, into, sound) {
    this.detach();
    const stream = new MediaStream([track]);
    this.track = track;
    this.el.muted = Boolean(ctx) || this.level === 0;
    this.el.srcObject = stream;
    this.replay(sound);
    if (!ctx) {
      this.output(this.level);
      return;
    }
    this.source = ctx.createMediaStreamSource(stream);
    if (this.analyse) {
      this.analyser = ctx.createAnalyser();
      this.analyser.fftSize = FFT_SIZE;
      this.analyser.smoothingTimeConstant = 0;
      this.source.connect(this.analyser); // before the gain: volume does not change the measurement
    }
    this.source.connect(into);
  }

  detach() {
    if (this.source) {
      try { this.source.disconnect(); } catch (_) { /* not connected */ }
    }
    this.source = null;
    this.analyser = null;
    this.track = null;
    this.el.srcObject = null;
  }

  // Plays the element. Without WebAudio it is what is heard: a refusal
  // (NotAllowedError, no gesture yet) makes sound (the PageAudio) prompt.
  replay(sound) {
    if (!this.el.srcObject) return;
    const heard = Boolean(sound && sound.unsupported);
    this.el.play().then(
      () => { if (heard) sound.blocked(false); },
      (err) => { if (heard && err && err.name === "NotAllowedError") sound.blocked(true); });
  }

  // Without WebAudio: the element's own level, 0–1 (0: muted).
  output(level) {
    this.level = level;
    if (this.source) return;
    this.el.muted = level === 0;
    try { this.el.volume = Math.min(1, Math.max(0, level)); } catch (_) { /* read-only (iOS) */ }
  }
}

// Can a page set a media element's volume? Not on iOS, where it stays 1.
export function volumeSettable() {
  const probe = document.createElement("audio");
  try { probe.volume = 0.5; } catch (_) { return false; }
  return Math.abs(probe.volume - 0.5) < 0.01;
}

/* --------------------------------------------------------------- volume */

export function gainFor(percent) {
  const x = percent / 100;
  return x * x; // roughly perceptual; 100 % is unity gain
}

// Glides a gain node to a 0–100 % slider value.
export function rampGain(node, percent) {
  node.gain.setTargetAtTime(gainFor(percent), node.context.currentTime, 0.02);
}

// A 0–100 % slider remembered in localStorage; apply() runs on every change.
export function percentSlider(input, output, key, fallback, apply) {
  let saved = null;
  try { saved = localStorage.getItem(key); } catch (_) { /* storage disabled */ }
  const n = saved === null ? NaN : Number(saved);
  input.value = String(Number.isFinite(n) && n >= 0 && n <= 100 ? n : fallback);
  const show = () => {
    output.textContent = `${input.value} %`;
    input.setAttribute("aria-valuetext", `${input.value} percent`);
  };
  show();
  input.addEventListener("input", () => {
    show();
    apply();
    try { localStorage.setItem(key, input.value); } catch (_) { /* storage disabled */ }
  });
}

/* --------------------------------------------------------------- levels */

// The analyser's newest samples, in holder.buf (reused while the size fits).
export function timeDomain(an, holder) {
  if (!holder.buf || holder.buf.length !== an.fftSize) holder.buf = new Float32Array(an.fftSize);
  an.getFloatTimeDomainData(holder.buf);
  return holder.buf;
}

// Mean square of the newest n samples (the buffer's tail is the newest).
export function meanSquareTail(buf, n) {
  n = Math.min(n, buf.length);
  let sum = 0;
  for (let i = buf.length - n; i < buf.length; i++) sum += buf[i] * buf[i];
  return n ? sum / n : 0;
}

export const toDb = (meanSquare) => (meanSquare > 0 ? 10 * Math.log10(meanSquare) : -Infinity);

// RMS level of the analyser's newest 2048 samples, dBFS.
export function levelDb(an, holder) {
  return toDb(meanSquareTail(timeDomain(an, holder), 2048));
}

// 0 (silence) … 1 (0 dBFS): how far a level bar is filled.
export const fraction = (db) => Math.min(1, Math.max(0, (db - SILENCE_DB) / -SILENCE_DB));

// A level as a role="meter" element's aria-valuenow: whole dB, -60 … 0.
export const meterDb = (db) => Math.round(Math.max(SILENCE_DB, Math.min(0, db)));

// A level bar of received sound: fast attack, gentle fall.
export class LevelMeter {
  constructor(meter, fill) {
    this.meter = meter; // the role="meter" element
    this.fill = fill;
    this.shown = 0;
  }

  show(db) {
    this.shown = Math.max(fraction(db), this.shown - 0.05);
    this.fill.style.transform = `scaleX(${this.shown.toFixed(3)})`;
  }

  // For assistive technology; the page decides how often.
  describe(db) {
    this.meter.setAttribute("aria-valuenow", String(meterDb(db)));
    this.meter.setAttribute("aria-valuetext", db > SILENCE_DB ? "sound arriving" : "silent");
  }
}
