/*
 * Tolk page module: the tone measurement the browser tests call through the
 * pages' hooks (window.tolkListener.measureTone, window.tolkBooth.measureInput
 * and measurePartner), handy in the console too.
 *
 * This file owns: averaging an analyser's spectrum (linear power) and the
 * received signal's power over a time, the peak frequency of that spectrum,
 * and levels as plain JSON numbers (FLOOR_DB instead of -Infinity).
 */
import { FFT_SIZE, meanSquareTail, timeDomain, toDb } from "./audio.js";

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
