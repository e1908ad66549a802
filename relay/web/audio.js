/*
 * Tolk page module: WebAudio, shared by the listener and booth pages.
 *
 * This file owns: the page's AudioContext (created on first use, resumed,
 * and whether the browser's autoplay policy holds it back until a gesture),
 * playing a received WebRTC track through WebAudio (TrackPlayer, with an
 * analyser before any gain), volume gains and the 0–100 % sliders that set
 * them, and levels: dBFS of an analyser's newest samples and the level bar.
 * The pages build their own graphs and meters from these parts.
 */

export const FFT_SIZE = 8192; // analysers of received tracks (meters, tone measurement)
export const SILENCE_DB = -60; // what the meters show as silence
const METER_INTERVAL_MS = 50;

/*
 * The page's AudioContext. hooks (functions):
 *   build(ctx)        wire the page's graph, once
 *   tick()            the meters, every 50 ms once the context exists
 *   wanted()          the page wants sound now (else a suspended context
 *                     needs no gesture)
 *   gestureNeeded()   needsGesture changed
 */
export class PageAudio {
  constructor(hooks) {
    this.hooks = hooks;
    this.ctx = null;
    this.needsGesture = false; // held back by the autoplay policy
  }

  // Creates the context on first use and resumes it (called on a user
  // gesture or by ?autoplay=1). Returns the context, or null without WebAudio.
  ensure() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      this.ctx = new Ctx();
      this.hooks.build(this.ctx);
      this.ctx.addEventListener("statechange", () => this.check());
      setInterval(this.hooks.tick, METER_INTERVAL_MS);
    }
    if (this.ctx.state !== "running") this.ctx.resume().then(() => this.check(), () => {});
    // Without a user gesture resume() stays pending; look again shortly.
    setTimeout(() => this.check(), 600);
    return this.ctx;
  }

  check() {
    const blocked = Boolean(this.ctx) && this.ctx.state === "suspended" && this.hooks.wanted();
    if (blocked === this.needsGesture) return;
    this.needsGesture = blocked;
    this.hooks.gestureNeeded();
  }

  // On a user gesture: resume the context and the players' media elements.
  unlock(players) {
    if (this.ctx && this.ctx.state !== "running") this.ctx.resume().then(() => this.check(), () => {});
    for (const p of players) p.replay();
  }
}

/*
 * A received track played through WebAudio. A muted <audio> element plays it
 * (Chromium only feeds remote WebRTC audio to WebAudio when a media element
 * plays it), in a MediaStream of its own (given a stream holding two tracks,
 * createMediaStreamSource() would pick one of them); its source feeds the
 * page's graph and, with analyse, an analyser before any gain.
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
  }

  attach(ctx, track, into) {
    this.detach();
    const stream = new MediaStream([track]);
    this.track = track;
    this.el.muted = true;
    this.el.srcObject = stream;
    this.el.play().catch(() => {});
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

  replay() {
    if (this.el.srcObject) this.el.play().catch(() => {});
  }
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
