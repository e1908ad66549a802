/*
 * Tolk page module: the tone measurement the browser tests call through the
 * pages' hooks (window.tolkListener.measureTone, window.tolkBooth.measureInput
 * and measurePartner), handy in the console too.
 *
 * This file owns: averaging an analyser's spectrum (linear power) and the
 * received signal's power over a time, the peak frequency of that spectrum,
 * levels as plain JSON numbers (FLOOR_DB instead of -Infinity), and the
 * times at which tone bursts begin in a received track (OnsetClock, for the
 * playout delay test: window.tolkBooth.onsets, window.tolkListener.onsets).
 */
import { FFT_SIZE, meanSquareTail, timeDomain, toDb } from "./audio.js";
import { jitterBuffer } from "./session.js";

const MEASURE_INTERVAL_MS = 50;
export const FLOOR_DB = -200; // reported instead of -Infinity so results stay plain JSON numbers

// A level in dBFS as a plain JSON number.
export function reportDb(db) {
  return Number.isFinite(db) ? Math.max(FLOOR_DB, db) : FLOOR_DB;
}

// Measures what the analyser analyser() returns (null: nothing to measure)
// over `ms` milliseconds → Promise<{frequency, level_db, frames}>.
export function measureTone(analyser, ms) {
  ms = Math.max(0, Number(ms) || 0);
  const m = { analyser, power: null, frames: 0, sumSq: 0, samples: 0, lastTime: null, sampleRate: 0, fftSize: FFT_SIZE, buf: null };
  return new Promise((resolve) => {
    const read = () => readMeasurement(m);
    read();
    const timer = setInterval(read, MEASURE_INTERVAL_MS);
    setTimeout(() => {
      clearInterval(timer);
      resolve(summariseMeasurement(m));
    }, ms);
  });
}

function readMeasurement(m) {
  const an = m.analyser();
  if (!an) return;
  const bins = an.frequencyBinCount;
  if (!m.power || m.power.length !== bins) {
    m.power = new Float64Array(bins);
    m.frames = 0;
  }
  const spectrum = new Float32Array(bins);
  an.getFloatFrequencyData(spectrum);
  for (let i = 0; i < bins; i++) m.power[i] += Math.pow(10, spectrum[i] / 10);
  m.frames += 1;
  m.sampleRate = an.context.sampleRate;
  m.fftSize = an.fftSize;

  // Only count samples that arrived since the previous read.
  const buf = timeDomain(an, m);
  const now = an.context.currentTime;
  const fresh = m.lastTime === null
    ? Math.round(MEASURE_INTERVAL_MS / 1000 * m.sampleRate)
    : Math.round((now - m.lastTime) * m.sampleRate);
  m.lastTime = now;
  const n = Math.min(Math.max(fresh, 0), buf.length);
  if (n > 0) {
    m.sumSq += meanSquareTail(buf, n) * n;
    m.samples += n;
  }
}

function summariseMeasurement(m) {
  return {
    frequency: m.frames ? peakFrequency(m) : 0,
    level_db: reportDb(m.samples ? toDb(m.sumSq / m.samples) : -Infinity),
    frames: m.frames,
  };
}

// Strongest bin between 80 and 4000 Hz, refined by parabolic interpolation
// on the log power of the bin and its neighbours.
function peakFrequency(m) {
  const binHz = m.sampleRate / m.fftSize;
  const lo = Math.max(1, Math.ceil(80 / binHz));
  const hi = Math.min(m.power.length - 2, Math.floor(4000 / binHz));
  let k = -1;
  let best = 0;
  for (let i = lo; i <= hi; i++) {
    if (m.power[i] > best) {
      best = m.power[i];
      k = i;
    }
  }
  if (k < 0) return 0;
  const y = (i) => 10 * Math.log10(Math.max(m.power[i] / m.frames, 1e-30));
  const a = y(k - 1), b = y(k), c = y(k + 1);
  const denom = a - 2 * b + c;
  const delta = denom < 0 ? Math.max(-0.5, Math.min(0.5, 0.5 * (a - c) / denom)) : 0;
  return (k + delta) * binHz;
}

/* -------------------------------------------------------------- onsets */

const ONSET_POLL_MS = 5;
const ONSET_THRESHOLD = 0.05; // |sample| above -26 dBFS is sound
const ONSET_QUIET_S = 0.03; // this much below it before, and the sound is a new burst

/*
 * The wall-clock times (ms since 1970, performance.timeOrigin +
 * performance.now(), comparable with another program's clock on the same
 * machine) at which bursts of sound begin in what analyser() analyses: the
 * newest samples are read every few milliseconds, only those that arrived
 * since the last read are looked at (by the context's clock), and a sample
 * above the threshold after ONSET_QUIET_S of quiet is an onset, dated by
 * its place before the newest sample (none after samples went by unread).
 * The time is when the page's graph has the sound; the device's output
 * latency (ctx.baseLatency, ctx.outputLatency) comes on top and is
 * reported beside it.
 */
export class OnsetClock {
  constructor(analyser) {
    this.analyser = analyser;
    this.times = [];
    this.gaps = []; // ms of quiet before each onset
    // Seconds of quiet up to the last sample read: the recording begins as
    // after a second of it, so the first sound is an onset.
    this.quiet = 1;
    this.lastFrame = null; // context frame of the newest sample read
    this.buf = null;
    this.timer = setInterval(() => this.read(), ONSET_POLL_MS);
  }

  read() {
    const an = this.analyser();
    if (!an) return;
    const ctx = an.context;
    const nowMs = performance.timeOrigin + performance.now();
    const end = Math.round(ctx.currentTime * ctx.sampleRate); // frame after the newest sample
    const buf = timeDomain(an, this);
    const fresh = this.lastFrame === null ? 0 : Math.min(buf.length, Math.max(0, end - this.lastFrame));
    // Samples went by unread (the page was busy): what came before is
    // unknown, so what follows is not dated as an onset.
    if (this.lastFrame !== null && end - this.lastFrame > buf.length) this.quiet = 0;
    this.lastFrame = end;
    for (let i = buf.length - fresh; i < buf.length; i++) {
      if (Math.abs(buf[i]) < ONSET_THRESHOLD) {
        this.quiet += 1 / ctx.sampleRate;
        continue;
      }
      if (this.quiet >= ONSET_QUIET_S) {
        this.times.push(nowMs - ((buf.length - i) / ctx.sampleRate) * 1000);
        this.gaps.push(Math.round(this.quiet * 1000));
      }
      this.quiet = 0;
    }
  }

  stop() {
    clearInterval(this.timer);
    return { times: this.times, gaps: this.gaps };
  }

  // The context's own latencies, ms (what the device adds after the graph).
  static latency(ctx) {
    const ms = (s) => (typeof s === "number" ? Math.round(s * 10000) / 10 : null);
    return ctx ? { base_ms: ms(ctx.baseLatency), output_ms: ms(ctx.outputLatency), sample_rate: ctx.sampleRate } : null;
  }
}

// The pages' test hooks for onsets in a received track: recordOnsets()
// starts (anew), onsetCount() so far, onsets() ends it → Promise<{times,
// gaps, latency, jitter_buffer}>: gaps are the ms of quiet before each
// onset, jitter_buffer the track's receiver's (session.js).
export function onsetHooks(analyser, sound, receiver) {
  let clock = null;
  return {
    recordOnsets() {
      if (clock) clock.stop();
      clock = new OnsetClock(analyser);
      return true;
    },
    onsetCount: () => (clock ? clock.times.length : 0),
    async onsets() {
      const found = clock ? clock.stop() : { times: [], gaps: [] };
      clock = null;
      const r = receiver();
      return Object.assign(found, { latency: OnsetClock.latency(sound.ctx), jitter_buffer: r && await jitterBuffer(r) });
    },
  };
}
