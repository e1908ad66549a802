/*
 * BBB-client stand-in: what the page records for tests, and the visible log.
 *
 * This file owns window.standin: speakerLevel (the last SET_SPEAKER_LEVEL
 * level, 1 at first), log (every setter call, ui command, data-hook
 * subscription, plugin load and console error, with the time in ms since
 * the page started), items (what each setter last received, without the
 * functions), plus the page's own facts (enter, users, audioJoined). Console
 * errors and uncaught errors of the plugin go to the visible log area too.
 */

export const standin = {
  speakerLevel: 1,
  audioJoined: false,
  enter: null,
  users: [],
  plugins: [],
  log: [],
  items: {},
  errors: [],
};
window.standin = standin;

const started = performance.now();
let logArea = null;

export function record(kind, name, detail) {
  const entry = { t: Math.round(performance.now() - started), kind, name };
  if (detail !== undefined) entry.detail = detail;
  standin.log.push(entry);
  return entry;
}

// A plain copy of a plugin's item: its data, not its functions or React roots.
export function describe(item) {
  const out = {};
  for (const [k, v] of Object.entries(item || {})) {
    if (typeof v === 'function') continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && k !== 'icon') continue;
    out[k] = v;
  }
  return out;
}

// The visible log: messages of the page and errors of the plugins.
export function attachLog(el) {
  logArea = el;
}

export function show(level, text) {
  if (level === 'error') standin.errors.push(text);
  if (!logArea) return;
  const line = document.createElement('li');
  line.className = `log__line log__line--${level}`;
  line.dataset.level = level;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const msg = document.createElement('span');
  msg.textContent = text;
  line.append(time, msg);
  logArea.append(line);
  logArea.parentElement.dataset.count = String(logArea.children.length);
  if (level === 'error') logArea.parentElement.dataset.errors = 'yes';
}

function text(args) {
  return args.map((a) => {
    if (a instanceof Error) return a.stack || a.message;
    if (typeof a === 'string') return a;
    try { return JSON.stringify(a); } catch (_) { return String(a); }
  }).join(' ');
}

// console.error and uncaught errors of anything on the page (the plugin above all).
export function catchErrors() {
  const original = console.error.bind(console);
  console.error = (...args) => {
    original(...args);
    const t = text(args);
    record('error', 'console.error', t);
    show('error', t);
  };
  window.addEventListener('error', (e) => {
    const t = e.error ? text([e.error]) : `${e.message} (${e.filename}:${e.lineno})`;
    record('error', 'uncaught', t);
    show('error', t);
  });
  window.addEventListener('unhandledrejection', (e) => {
    const t = text([e.reason]);
    record('error', 'unhandledrejection', t);
    show('error', t);
  });
}
