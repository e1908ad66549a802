/*
 * Tolk interpreter booth page (served as booth.html at /booth#token={token}).
 *
 * This file owns: the booth state (GET state, websocket pushes, polling
 * fallback), the actions (on air / off air / cough / input / handover / chat /
 * slow down / recording consent), the REC sign, the WHIP session (microphone
 * out, input + partner in, reconnect with backoff), the WebAudio graph (input
 * and partner volume, microphone meter with clip lamp, tone measurement),
 * line quality from getStats() and the window.tolkBooth test hook.
 * Markup lives in booth.html, looks in tolk.css (section "booth"). Shared
 * with the listener page: HTTP in http.js, the session lifecycle in
 * session.js, WebAudio parts in audio.js, the tone measurement in measure.js.
 *
 * Every URL is resolved relative to the page, so the server may be mounted
 * behind a path prefix (https://host/prefix/booth#token={token}).
 *
 * The interpreter must hear the floor as early as the network allows: the
 * receivers ask the browser for the lowest playout delay (lowPlayoutDelay in
 * session.js) and the AudioContext for the lowest output latency.
 * ?playout=default leaves the browser's own playout delay (for comparison:
 * tests/tests/booth_delay.rs, docs/browsers.md).
 *
 * The booth token never goes into a URL the browser requests (logs and
 * proxies keep those): it comes from the address's fragment and goes out in
 * an Authorization header (state, actions, WHIP) and as the websocket's
 * first message.
 */
import { Backoff, HttpError, isPermanent, problemFrom, request, sentence as toSentence } from "./http.js";
import { SessionLink, lowPlayoutDelay } from "./session.js";
import {
  LevelMeter, PageAudio, SILENCE_DB, TrackPlayer, fraction, levelDb, meanSquareTail, meterDb, percentSlider,
  rampGain, timeDomain, toDb,
} from "./audio.js";
import { measureTone, onsetHooks, reportDb } from "./measure.js";
import { $, fragment, pageRoot } from "./page.js";

const INPUT_VOLUME_KEY = "tolk.booth.inputVolume";
const PARTNER_VOLUME_KEY = "tolk.booth.partnerVolume";
const DEFAULT_INPUT_VOLUME = 100;
const DEFAULT_PARTNER_VOLUME = 40;
const POLL_MS = 2000;
const STATS_MS = 2000;
const MIC_FFT_SIZE = 2048;
const CLIP_DB = -3;
const CLIP_HOLD_MS = 1500;
const PEAK_HOLD_MS = 1000;
const NOTICE_MS = 8000;
const SLOW_DOWN_LOCK_MS = 5000;
const HANDOVER_WAIT_MS = 20000;
const CHAT_ECHO_MS = 10000;
const CHAT_KEEP = 200;

const ui = {
  title: $("event-title"),
  meLine: $("me-line"),
  status: $("status"),
  statusText: $("status-text"),
  quality: $("quality"),
  reconnect: $("reconnect"),
  fatal: $("fatal"),
  fatalText: $("fatal-text"),
  elsewhere: $("elsewhere"),
  useHere: $("use-here"),
  handover: $("handover"),
  handoverText: $("handover-text"),
  handoverAccept: $("handover-accept"),
  soundHint: $("sound-hint"),
  soundUnlock: $("sound-unlock"),
  notice: $("notice"),
  console: $("console"),
  air: $("air"),
  airText: $("air-text"),
  airMuted: $("air-muted"),
  airSub: $("air-sub"),
  recSign: $("rec-sign"),
  recording: $("recording"),
  recNow: $("rec-now"),
  recConsent: $("rec-consent"),
  recNote: $("rec-note"),
  airButtons: $("air-buttons"),
  offAir: $("off-air"),
  handoverRequest: $("handover-request"),
  micAlert: $("mic-alert"),
  micAlertText: $("mic-alert-text"),
  micRetry: $("mic-retry"),
  cough: $("cough"),
  coughLabel: $("cough-label"),
  micDb: $("mic-db"),
  clip: $("clip"),
  micMeter: $("mic-meter"),
  micCover: $("mic-cover"),
  micPeak: $("mic-peak"),
  inputs: $("inputs"),
  inputVolume: $("input-volume"),
  inputVolumeValue: $("input-volume-value"),
  inputMeter: $("input-meter"),
  inputMeterFill: $("input-meter-fill"),
  partnerVolume: $("partner-volume"),
  partnerVolumeValue: $("partner-volume-value"),
  slowDown: $("slow-down"),
  slowNote: $("slow-note"),
  partners: $("partners"),
  chatList: $("chat-list"),
  chatForm: $("chat-form"),
  chatText: $("chat-text"),
  channels: $("channels"),
  announce: $("announce"),
  audioInput: $("audio-input"),
  audioPartner: $("audio-partner"),
};

const params = new URLSearchParams(location.search);
const LOW_PLAYOUT_DELAY = params.get("playout") !== "default";
// The page lives at {root}/booth#token={token}; everything else hangs off {root}.
const ROOT = pageRoot(1);
const token = fragment("token");

// The websocket's close codes (http/booth_socket.rs).
const WS_REPLACED = 4000; // the booth was opened in another window
const WS_NOT_A_BOOTH_LINK = 4001; // revoked, unknown, or its event cancelled

const st = {
  state: null, // latest booth state from the server
  connection: "idle", // "idle" | "connecting" | "connected" | "reconnecting" | "error"
  connMessage: "",
  announced: "",
  fatal: null, // sentence shown when the booth link is revoked/unknown (401) or open elsewhere
  stateError: null, // last failure loading the state (not fatal)
  ws: null,
  wsOpen: false,
  wsBackoff: new Backoff(),
  wsTimer: 0,
  pollTimer: 0,
  polling: false,
  leaving: false, // pagehide: don't reconnect anything
  mic: { stream: null, track: null, error: null },
  coughPointer: null, // pointerId holding the cough button
  coughKey: false, // Space held
  coughHeld: false,
  muteWanted: null, // value still to be sent to the server
  muteSending: false,
  airBusy: false, // an on-air/off-air/handover call is in flight
  consentBusy: false, // a consent change is in flight
  pendingInput: null, // input source clicked, not yet confirmed
  handoverAskedAt: 0,
  pendingChats: [], // own messages shown before the server echoed them
  noticeTimer: 0,
  slowTimer: 0,
  quality: null,
  statsPrev: null,
};

// input → analyser (meter, measureInput) and → its volume gain → speakers; partner likewise
const audio = {
  micSource: null,
  micAnalyser: null,
  micSink: null, // zero gain to the destination, keeps the mic analyser pulled
  micTap: { buf: null }, // see timeDomain()
  micShown: 0,
  peakDb: -Infinity,
  peakAt: 0,
  clipUntil: 0,
  ariaAt: 0,
  gain: { input: null, partner: null },
};
const players = { input: new TrackPlayer(ui.audioInput, true), partner: new TrackPlayer(ui.audioPartner, true) };
const inputMeter = new LevelMeter(ui.inputMeter, ui.inputMeterFill);
const sound = new PageAudio({
  build(ctx) {
    for (const role of ["input", "partner"]) {
      audio.gain[role] = ctx.createGain();
      audio.gain[role].connect(ctx.destination);
    }
    audio.micSink = ctx.createGain();
    audio.micSink.gain.value = 0; // never play the microphone back
    audio.micSink.connect(ctx.destination);
    applyVolumes();
  },
  tick: meterTick,
  wanted: () => !st.fatal,
  gestureNeeded() { ui.soundHint.hidden = !sound.needsGesture; },
  woke() { if (!st.fatal && !st.leaving) link.revive(); },
});

// The WHIP session: the current one is link.current, see startSession().
const link = new SessionLink({
  headers: authHeaders,
  problem,
  prepare: prepareSession,
  ready: () => sound.started(),
  connected() {
    setConnection("connected", "Connected.");
    statsTick();
  },
  status: setConnection,
  failed: sessionFailed,
  restart: () => startSession(true),
  ended() {
    players.input.detach();
    players.partner.detach();
    showQuality(null);
  },
});

/* ---------------------------------------------------------------- URLs */

const apiUrl = (path) => new URL(`api/v1/booth/${path}`, ROOT).href;
const whipUrl = () => new URL("whip/booth", ROOT).href;

function wsUrl() {
  const url = new URL("api/v1/booth/ws", ROOT);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/* ------------------------------------------------------------ HTTP helpers */

function authHeaders(extra) {
  return Object.assign({ Authorization: `Bearer ${token}` }, extra || {});
}

// An error answer as an HttpError (http.js) whose message is the server's detail.
function problem(res) {
  return problemFrom(res, { fallback: { 401: "This booth link is not valid" }, raw: true });
}

// The booth's sentences start with a capital: the server's details may not.
const sentence = (text) => toSentence(text, true);

/* ------------------------------------------------------------ state + API */

async function fetchState() {
  if (st.fatal) throw new HttpError(st.fatal, { status: 401 });
  const res = await request(apiUrl("state"), {
    headers: authHeaders({ Accept: "application/json" }),
    cache: "no-store",
  });
  if (!res.ok) {
    const err = await problem(res);
    if (err.status === 401) fatal(err.message);
    throw err;
  }
  const s = await res.json();
  st.stateError = null;
  applyState(s);
  renderStatus();
  return s;
}

// POST an action; resolves to the new state, rejects with the server's detail.
async function call(action, body) {
  if (st.fatal) throw new HttpError(st.fatal, { status: 401 });
  const res = await request(apiUrl(encodeURIComponent(String(action))), {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body || {}),
    cache: "no-store",
  });
  if (!res.ok) {
    const err = await problem(res);
    if (err.status === 401) fatal(err.message);
    throw err;
  }
  let s = null;
  try { s = await res.json(); } catch (_) { /* empty body */ }
  if (isState(s)) {
    applyState(s);
    return copy(s);
  }
  return copy(st.state);
}

// call() for the page's own controls: failures become a visible notice.
function act(action, body) {
  return call(action, body).catch((err) => {
    if (!st.fatal) showNotice(sentence(err.message));
    throw err;
  });
}

const isState = (s) => Boolean(s) && typeof s === "object" && Boolean(s.me);
const copy = (v) => (v == null ? null : JSON.parse(JSON.stringify(v)));

function applyState(s) {
  if (!isState(s)) return;
  const prev = st.state;
  // If the server ever numbers its states, never go back in time.
  if (prev && typeof s.version === "number" && typeof prev.version === "number" && s.version < prev.version) return;
  st.state = s;
  if (st.pendingInput !== null && sameLang(s.input, st.pendingInput)) st.pendingInput = null;
  render(prev);
}

/* -------------------------------------------------------------- websocket */

function connectWs() {
  if (st.fatal || st.leaving || st.ws || !token) return;
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (_) {
    scheduleWs();
    return;
  }
  st.ws = ws;
  ws.onopen = () => {
    if (st.ws !== ws) return;
    ws.send(JSON.stringify({ token })); // the socket's first message: who I am
    st.wsOpen = true;
    st.wsBackoff.reset();
    stopPolling();
    renderStatus();
    fetchState().catch(onStateError); // catch up on anything missed while down
  };
  ws.onmessage = (e) => {
    if (st.ws === ws) onWsMessage(e.data);
  };
  ws.onclose = (e) => {
    if (st.ws !== ws) return;
    st.ws = null;
    st.wsOpen = false;
    if (e.code === WS_REPLACED) fatal(e.reason || "This booth was opened in another window", ui.elsewhere);
    if (e.code === WS_NOT_A_BOOTH_LINK) fatal(e.reason);
    if (st.fatal || st.leaving) return;
    renderStatus();
    startPolling();
    pollOnce(); // also finds out at once whether the link was revoked
    scheduleWs();
  };
  ws.onerror = () => { /* onclose follows */ };
}

function scheduleWs() {
  clearTimeout(st.wsTimer);
  const secs = st.wsBackoff.next();
  st.wsTimer = setTimeout(connectWs, secs * 1000);
}

function closeWs() {
  clearTimeout(st.wsTimer);
  const ws = st.ws;
  st.ws = null;
  st.wsOpen = false;
  if (ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000); } catch (_) { /* already closed */ }
  }
}

function onWsMessage(data) {
  let m;
  try { m = JSON.parse(data); } catch (_) { return; }
  if (!m || typeof m !== "object") return;
  switch (m.type) {
    case "state":
      applyState(m.state);
      break;
    case "chat":
      onChat(m);
      break;
    case "handover-request":
      onHandoverRequest(m.from);
      break;
    case "error":
      if (m.detail) showNotice(sentence(m.detail));
      break;
    default:
      break;
  }
}

function startPolling() {
  if (st.pollTimer || st.fatal || st.leaving) return;
  st.pollTimer = setInterval(pollOnce, POLL_MS);
}

function stopPolling() {
  clearInterval(st.pollTimer);
  st.pollTimer = 0;
}

function pollOnce() {
  if (st.polling || st.fatal || st.leaving) return;
  st.polling = true;
  fetchState().catch(onStateError).finally(() => {
    st.polling = false;
  });
}

function onStateError(err) {
  if (st.fatal || err.status === 401) return; // fatal() already ran
  st.stateError = sentence(err.message);
  if (!st.state && isPermanent(err)) {
    ui.title.textContent = "Booth not available";
    setConnection("error", st.stateError);
  }
  renderStatus();
}

/* ------------------------------------------- fatal (401, or open elsewhere) */

// Stop everything and show why: the link does not work (panel ui.fatal), or
// the booth was opened in another window (panel ui.elsewhere).
function fatal(detail, panel = ui.fatal) {
  if (st.fatal) return;
  st.fatal = sentence(detail || "This booth link is not valid");
  link.stop();
  stopPolling();
  closeWs();
  stopMic();
  setCoughInputs(false, false);
  ui.fatalText.textContent = st.fatal;
  panel.hidden = false;
  ui.handover.hidden = true;
  ui.soundHint.hidden = true;
  ui.console.inert = true;
  ui.console.setAttribute("aria-disabled", "true");
  document.body.dataset.fatal = "true";
  document.title = panel === ui.fatal ? "Booth link not valid · Tolk" : "Booth open elsewhere · Tolk";
  renderAir();
  setConnection("error", st.fatal);
  try { panel.focus(); } catch (_) { /* not focusable */ }
}

/* ------------------------------------------------------------- status line */

const CONNECTION_TEXT = {
  idle: "Starting…",
  connecting: "Connecting the booth audio…",
  connected: "Connected.",
  reconnecting: "Reconnecting…",
  error: "Something went wrong.",
};

// quiet: update the visible line only (countdown ticks), don't announce.
function setConnection(state, message, quiet) {
  st.connection = state;
  st.connMessage = message || CONNECTION_TEXT[state];
  renderStatus(quiet);
}

function renderStatus(quiet) {
  let text = st.connMessage || CONNECTION_TEXT[st.connection];
  if (!st.fatal && st.connection === "connected") {
    if (st.stateError) text += ` Booth updates interrupted: ${st.stateError}`;
    else if (!st.wsOpen && st.state) text += " Live updates interrupted; checking every 2 s.";
  }
  ui.status.dataset.state = st.connection;
  document.body.dataset.connection = st.connection;
  ui.statusText.textContent = text;
  ui.reconnect.hidden = !(st.connection === "error" && !st.fatal && st.state);
  if (!quiet && text !== st.announced) {
    st.announced = text;
    announce(text);
  }
}

function announce(text) {
  ui.announce.textContent = text;
}

function showNotice(text) {
  clearTimeout(st.noticeTimer);
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
  if (text) st.noticeTimer = setTimeout(() => { ui.notice.hidden = true; }, NOTICE_MS);
}

/* ---------------------------------------------------------------- helpers */

const lc = (v) => String(v == null ? "" : v).toLowerCase();
const sameLang = (a, b) => a != null && b != null && lc(a) === lc(b);
const CODE = (lang) => String(lang || "").toUpperCase();

function me() {
  return (st.state && st.state.me) || null;
}

function myLanguages() {
  const m = me();
  return m && Array.isArray(m.languages) ? m.languages.filter((l) => typeof l === "string" && l) : [];
}

function isMe(person) {
  const m = me();
  return Boolean(m && person && person.id === m.id);
}

function channels() {
  const s = st.state;
  return s && Array.isArray(s.channels) ? s.channels.filter((c) => c && typeof c.language === "string") : [];
}

function channelOf(lang) {
  return channels().find((c) => sameLang(c.language, lang)) || null;
}

function labelOf(lang) {
  const s = st.state;
  if (s && s.floor && sameLang(s.floor.language, lang)) return s.floor.label || CODE(lang);
  const ch = channelOf(lang);
  return (ch && ch.label) || CODE(lang);
}

// The partner (not me) on air in lang, if any.
function otherOnAir(lang) {
  const ch = channelOf(lang);
  const who = ch && ch.on_air;
  return who && !isMe(who) ? who : null;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function listenersText(n) {
  return typeof n === "number" ? plural(n, "listener", "listeners") : "";
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

function note(tag, text) {
  return el(tag, "t-muted", text);
}

// Keeps container's children in step with items, reusing elements by key so
// that focus and hover survive the frequent state pushes.
function syncList(container, items, keyOf, create, update, emptyText) {
  if (!items.length) {
    const only = container.children.length === 1 && container.firstElementChild.dataset.empty === "1";
    if (!only) {
      const n = note(container.tagName === "UL" || container.tagName === "OL" ? "li" : "p", emptyText);
      n.dataset.empty = "1";
      container.replaceChildren(n);
    } else {
      container.firstElementChild.textContent = emptyText;
    }
    return;
  }
  const existing = new Map();
  for (const child of Array.from(container.children)) {
    if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
    else child.remove();
  }
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    let node = existing.get(key);
    if (node) existing.delete(key);
    else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (node !== want) container.insertBefore(node, want);
    prev = node;
  }
  for (const node of existing.values()) node.remove();
}

/* ---------------------------------------------------------------- render */

function render(prev) {
  const s = st.state;
  if (!s) return;
  renderHeader();
  renderAir();
  renderRecording();
  renderAirButtons();
  renderHandover();
  renderCough();
  renderInputs();
  renderPartners();
  renderChannels();
  announceChanges(prev, s);
}

function renderHeader() {
  const s = st.state;
  const ev = s.event || {};
  const m = me() || {};
  const title = ev.title || "Booth";
  ui.title.textContent = title;
  const langs = myLanguages().map(CODE);
  const into = langs.length === 2 ? `A/B booth ${langs[0]} ⇄ ${langs[1]}` : langs.length ? `into ${langs.join(", ")}` : "";
  ui.meLine.textContent = [m.name, into].filter(Boolean).join(" · ") || "\u00a0";
  const air = s.on_air ? `● ON AIR ${CODE(s.on_air)} · ` : "";
  document.title = `${air}${title} · Tolk booth`;
}

function renderAir() {
  const s = st.state;
  const onAir = s && !st.fatal ? s.on_air : null; // a revoked link is off air
  const muted = !st.fatal && (st.coughHeld || Boolean(s && s.muted));
  ui.air.dataset.on = String(Boolean(onAir));
  ui.air.dataset.muted = String(muted);
  document.body.dataset.air = onAir ? "on" : "off";
  ui.airText.textContent = onAir ? `ON AIR · ${CODE(onAir)}` : "OFF AIR";
  ui.airMuted.hidden = !muted;
  if (!s) return;
  if (st.fatal) {
    ui.airSub.textContent = "Booth link not valid";
    return;
  }
  let sub;
  if (onAir) {
    const ch = channelOf(onAir);
    const n = ch ? listenersText(ch.listeners) : "";
    sub = muted
      ? `${labelOf(onAir)} · muted: ${n ? n + " hear" : "listeners hear"} silence`
      : [labelOf(onAir), n].filter(Boolean).join(" · ");
  } else {
    sub = myLanguages().map((lang) => {
      const who = otherOnAir(lang);
      return who ? `${who.name} is on air in ${CODE(lang)}` : `${CODE(lang)} carries the floor`;
    }).join(" · ") || "You are not on air.";
  }
  ui.airSub.textContent = sub;
}

// My languages recorded now (state.recording.channels), and whether I agreed to be recorded.
function recording() {
  const r = (st.state && st.state.recording) || {};
  const now = Array.isArray(r.channels) ? r.channels : [];
  return { consent: Boolean(r.consent), mine: myLanguages().filter((l) => now.some((c) => sameLang(c, l))) };
}

function renderRecording() {
  const s = st.state;
  const { consent, mine } = recording();
  const onAirRecorded = Boolean(s.on_air) && mine.some((l) => sameLang(l, s.on_air));
  ui.recSign.hidden = !mine.length || Boolean(st.fatal);
  ui.recSign.dataset.live = String(onAirRecorded);
  ui.recSign.title = mine.length ? `Recording ${mine.map(CODE).join(", ")}` : "";
  ui.recording.dataset.recording = String(mine.length > 0);
  ui.recNow.textContent = mine.length
    ? `Recording now: ${mine.map(labelOf).join(", ")}${onAirRecorded ? ", while you are on air" : ""}.`
    : "Your channels are not being recorded.";
  if (!st.consentBusy) ui.recConsent.checked = consent;
  ui.recConsent.disabled = st.consentBusy || Boolean(st.fatal);
  ui.recNote.hidden = consent || !mine.length;
}

function setConsent() {
  if (!st.state || st.consentBusy) return;
  const want = ui.recConsent.checked;
  st.consentBusy = true;
  renderRecording();
  act("consent", { recording_consent: want })
    .then(() => announce(want ? "You agreed to be recorded." : "You are no longer recorded: silence while you speak."))
    .catch(() => {})
    .finally(() => {
      st.consentBusy = false;
      if (st.state) renderRecording();
    });
}

function renderAirButtons() {
  const s = st.state;
  const langs = myLanguages();
  syncList(ui.airButtons, langs, (l) => lc(l), createAirButton, updateAirButton,
    "Your booth link has no output language.");
  ui.offAir.disabled = !s.on_air || st.airBusy;
  ui.offAir.dataset.active = String(Boolean(s.on_air));

  // Request handover: a partner is on air in one of my languages and I am not.
  const target = langs.find((l) => otherOnAir(l) && !sameLang(s.on_air, l));
  const who = target ? otherOnAir(target) : null;
  ui.handoverRequest.hidden = !who;
  if (who) {
    const waiting = st.handoverAskedAt > 0 && performance.now() - st.handoverAskedAt < HANDOVER_WAIT_MS;
    ui.handoverRequest.textContent = waiting
      ? `Asked ${who.name} to hand over…`
      : `Ask ${who.name} to hand over`;
    ui.handoverRequest.disabled = waiting || st.airBusy;
  }
}

function createAirButton(lang) {
  const btn = el("button", "t-btn tb-take");
  btn.type = "button";
  btn.dataset.language = lang;
  btn.append(el("span", "tb-take__main"), el("span", "tb-take__sub"));
  btn.addEventListener("click", () => goOnAir(btn.dataset.language));
  return btn;
}

function updateAirButton(btn, lang) {
  const s = st.state;
  const mine = sameLang(s.on_air, lang);
  const other = otherOnAir(lang);
  const main = btn.firstChild;
  const sub = btn.lastChild;
  if (mine) {
    main.textContent = `On air ${CODE(lang)}`;
    sub.textContent = "You are on air";
  } else if (other) {
    main.textContent = `Take over from ${other.name}`;
    sub.textContent = `On air ${CODE(lang)} · handover`;
  } else {
    main.textContent = `On air ${CODE(lang)}`;
    sub.textContent = labelOf(lang);
  }
  const noMic = !st.mic.track;
  if (noMic && !mine) sub.textContent = st.mic.error ? "Microphone not available" : "Waiting for the microphone…";
  btn.setAttribute("aria-pressed", String(mine));
  btn.dataset.handover = String(Boolean(other) && !mine);
  btn.disabled = st.airBusy || (noMic && !mine);
}

function renderHandover() {
  const s = st.state;
  const req = s.handover_request;
  const from = req && req.from;
  ui.handover.hidden = !from || Boolean(st.fatal);
  if (!from) return;
  ui.handoverText.textContent = `${from.name || "Your partner"} asks to take over`;
  ui.handoverAccept.disabled = st.airBusy;
}

function renderCough() {
  const s = st.state;
  const muted = st.coughHeld || Boolean(s && s.muted);
  ui.cough.setAttribute("aria-pressed", String(st.coughHeld));
  ui.cough.dataset.muted = String(muted);
  ui.coughLabel.textContent = muted ? "MUTED" : "Hold to cough";
}

function renderInputs() {
  const s = st.state;
  const items = [];
  if (s.floor) items.push({ key: "floor", source: "floor", lang: s.floor.language, label: s.floor.label, floor: true });
  for (const ch of channels()) {
    // My own output channels make no sense as input, unless the server says I listen to one.
    const own = myLanguages().some((l) => sameLang(l, ch.language));
    if (own && !sameLang(s.input, ch.language)) continue;
    items.push({ key: lc(ch.language), source: ch.language, lang: ch.language, label: ch.label, channel: ch });
  }
  syncList(ui.inputs, items, (i) => i.key, createInputChoice, updateInputChoice, "No input to choose from.");
}

function createInputChoice(item) {
  const btn = el("button", "t-choice");
  btn.type = "button";
  btn.setAttribute("aria-pressed", "false");
  const label = el("span", "t-choice__label");
  const meta = el("span", "t-choice__meta");
  btn.append(label, meta);
  btn.addEventListener("click", () => selectInput(btn.dataset.source));
  return btn;
}

function updateInputChoice(btn, item) {
  const s = st.state;
  btn.dataset.source = item.source;
  const current = st.pendingInput !== null ? st.pendingInput : s.input;
  btn.setAttribute("aria-pressed", String(item.floor ? current === "floor" : sameLang(current, item.source)));
  const label = btn.firstChild;
  label.lang = item.lang || "";
  label.textContent = item.label || CODE(item.lang);
  const meta = btn.lastChild;
  const parts = [el("span", "t-code", item.lang || "")];
  if (item.floor) {
    parts.push(el("span", "t-tag", "original"));
  } else {
    parts.push(el("span", "t-tag", "relay"));
    const who = item.channel.on_air;
    parts.push(el("span", null, who ? who.name : "no interpreter"));
  }
  meta.replaceChildren(...parts);
}

function renderPartners() {
  const s = st.state;
  const list = Array.isArray(s.partners) ? s.partners.filter((p) => p && !isMe(p)) : [];
  syncList(ui.partners, list, (p) => String(p.id), createPerson, updatePerson, "No partner in your booth.");
}

function createPerson() {
  const li = el("li", "tb-person");
  li.append(el("span", "tb-dot"), el("span", "tb-person__name"), el("span", "tb-person__presence"),
    el("span", "tb-person__air"));
  return li;
}

function updatePerson(li, p) {
  const [dot, name, presence, air] = li.children;
  const present = Boolean(p.present);
  dot.dataset.present = String(present);
  li.dataset.present = String(present);
  const langs = Array.isArray(p.languages) ? p.languages.map(CODE).join(" / ") : "";
  name.textContent = p.name || "Partner";
  name.title = langs;
  presence.textContent = present ? "present" : "away";
  if (p.on_air) {
    air.className = "tb-person__air t-tag tb-tag--air";
    air.textContent = `on air ${CODE(p.on_air)}`;
  } else {
    air.className = "tb-person__air t-muted";
    air.textContent = langs ? `off air · ${langs}` : "off air";
  }
}

function renderChannels() {
  const s = st.state;
  const rows = [];
  if (s.floor) rows.push({ key: "floor", lang: s.floor.language, label: s.floor.label, listeners: s.floor.listeners, floor: true });
  for (const ch of channels()) {
    rows.push({ key: lc(ch.language), lang: ch.language, label: ch.label, listeners: ch.listeners, on_air: ch.on_air });
  }
  syncList(ui.channels, rows, (r) => r.key, createChannelRow, updateChannelRow, "No channels yet.");
}

function createChannelRow() {
  const li = el("li", "tb-chan");
  const name = el("span", "tb-chan__name");
  name.append(el("span", "tb-chan__label"), el("span", "t-code tb-chan__code"));
  li.append(name, el("span", "tb-chan__who"), el("span", "tb-chan__count"));
  return li;
}

function updateChannelRow(li, r) {
  const [name, who, count] = li.children;
  name.firstChild.textContent = r.label || CODE(r.lang);
  name.firstChild.lang = r.lang || "";
  name.lastChild.textContent = r.lang || "";
  const mine = !r.floor && myLanguages().some((l) => sameLang(l, r.lang));
  li.dataset.mine = String(mine);
  if (r.floor) {
    who.textContent = "original";
    li.dataset.live = "floor";
  } else if (r.on_air) {
    who.textContent = isMe(r.on_air) ? `you${r.on_air.muted ? " (muted)" : ""}` : `${r.on_air.name}${r.on_air.muted ? " (muted)" : ""}`;
    li.dataset.live = isMe(r.on_air) ? "me" : "on";
  } else {
    who.textContent = "floor (nobody on air)";
    li.dataset.live = "off";
  }
  count.textContent = typeof r.listeners === "number" ? String(r.listeners) : "–";
  count.title = listenersText(r.listeners);
  count.setAttribute("aria-label", listenersText(r.listeners) || "listeners unknown");
}

function announceChanges(prev, s) {
  if (!prev) return;
  if (!sameLang(prev.on_air, s.on_air) || Boolean(prev.on_air) !== Boolean(s.on_air)) {
    if (s.on_air) {
      announce(`You are on air in ${labelOf(s.on_air)}.`);
    } else {
      const taker = otherOnAir(prev.on_air);
      announce(taker ? `${taker.name} took over ${labelOf(prev.on_air)}. You are off air.` : "You are off air.");
    }
    st.handoverAskedAt = 0;
  }
  const before = prev.handover_request && prev.handover_request.from;
  const now = s.handover_request && s.handover_request.from;
  if (now && (!before || before.id !== now.id)) announce(`${now.name} asks to take over.`);
}

/* --------------------------------------------------------------- actions */

function setAirBusy(busy) {
  st.airBusy = busy;
  if (st.state) {
    renderAirButtons();
    renderHandover();
  }
}

function goOnAir(lang) {
  const s = st.state;
  if (!s || st.airBusy || sameLang(s.on_air, lang)) return;
  setAirBusy(true);
  act("on-air", { language: lang }).catch(() => {}).finally(() => setAirBusy(false));
}

function goOffAir() {
  if (!st.state || !st.state.on_air || st.airBusy) return;
  setAirBusy(true);
  act("off-air", {}).catch(() => {}).finally(() => setAirBusy(false));
}

function requestHandover() {
  if (st.airBusy) return;
  st.handoverAskedAt = performance.now();
  setAirBusy(true);
  act("handover-request", {})
    .catch(() => { st.handoverAskedAt = 0; })
    .finally(() => {
      setAirBusy(false);
      setTimeout(() => { if (st.state) renderAirButtons(); }, HANDOVER_WAIT_MS + 50);
    });
}

function acceptHandover() {
  if (st.airBusy) return;
  setAirBusy(true);
  act("handover-accept", {}).catch(() => {}).finally(() => setAirBusy(false));
}

function onHandoverRequest(from) {
  if (!from || !st.state) return;
  // The state push normally carries the request too; don't wait for it.
  if (!st.state.handover_request) {
    const prev = copy(st.state);
    st.state.handover_request = { from };
    render(prev);
  }
}

function selectInput(source) {
  const s = st.state;
  if (!s || !source) return;
  const current = st.pendingInput !== null ? st.pendingInput : s.input;
  if (source === "floor" ? current === "floor" : sameLang(current, source)) return;
  st.pendingInput = source;
  renderInputs();
  act("input", { source })
    .catch(() => {})
    .finally(() => {
      if (st.pendingInput === source) st.pendingInput = null;
      if (st.state) renderInputs();
    });
}

function slowDown() {
  ui.slowDown.disabled = true;
  clearTimeout(st.slowTimer);
  act("slow-down", {}).then(() => {
    ui.slowNote.textContent = "Sent: the speaker is asked to slow down.";
    st.slowTimer = setTimeout(() => {
      ui.slowDown.disabled = false;
      ui.slowNote.textContent = "";
    }, SLOW_DOWN_LOCK_MS);
  }, () => {
    ui.slowDown.disabled = false;
  });
}

/* ----------------------------------------------------------- cough / mute */

function setCoughInputs(pointer, key) {
  if (pointer !== null) st.coughPointer = pointer === false ? null : pointer;
  if (key !== null) st.coughKey = key;
  const held = !st.fatal && (st.coughPointer !== null || st.coughKey);
  if (held === st.coughHeld) return;
  st.coughHeld = held;
  // Instant local cough: the browser sends silence at once, the server mutes the channel.
  if (st.mic.track) st.mic.track.enabled = !held;
  renderCough();
  renderAir();
  if (st.fatal) return;
  st.muteWanted = held;
  pumpMute();
}

// Sends the latest wanted mute value, one request at a time, in order.
async function pumpMute() {
  if (st.muteSending || st.muteWanted === null) return;
  const want = st.muteWanted;
  st.muteSending = true;
  try {
    await act("mute", { muted: want });
  } catch (_) { /* notice shown */ }
  st.muteSending = false;
  if (st.muteWanted === want) st.muteWanted = null;
  else pumpMute();
}

function isTextField(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["button", "checkbox", "radio", "range", "submit", "reset", "color", "file", "image"].includes(target.type);
}

const isSpace = (e) => e.code === "Space" || e.key === " " || e.key === "Spacebar";

function initCough() {
  const b = ui.cough;
  b.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    unlockAudio();
    setCoughInputs(e.pointerId, null);
  });
  const release = (e) => {
    if (st.coughPointer === e.pointerId) setCoughInputs(false, null);
  };
  for (const type of ["pointerup", "pointerleave", "pointercancel", "lostpointercapture"]) {
    b.addEventListener(type, release);
  }
  b.addEventListener("contextmenu", (e) => e.preventDefault()); // long press on touch screens
  b.addEventListener("click", (e) => e.preventDefault());

  document.addEventListener("keydown", (e) => {
    if (!isSpace(e) || e.ctrlKey || e.metaKey || e.altKey || isTextField(e.target)) return;
    e.preventDefault(); // no scrolling, no button activation
    if (st.fatal || e.repeat || st.coughKey) return;
    setCoughInputs(null, true);
  });
  document.addEventListener("keyup", (e) => {
    if (!isSpace(e) || !st.coughKey) return;
    e.preventDefault();
    setCoughInputs(null, false);
  });
  // Never stay muted because a key-up or pointer-up got lost.
  window.addEventListener("blur", () => setCoughInputs(false, false));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) setCoughInputs(false, false);
  });
}

/* ------------------------------------------------------------------ chat */

function onChat(m) {
  const from = m.from || {};
  const mine = isMe(from);
  if (mine) {
    const i = st.pendingChats.findIndex((p) => p.text === m.text);
    if (i >= 0) {
      const p = st.pendingChats.splice(i, 1)[0];
      p.li.dataset.pending = "false";
      setChatTime(p.li, m.at);
      return;
    }
  }
  appendChat(from.name || "?", m.text, m.at, mine);
}

function appendChat(name, text, at, mine) {
  const list = ui.chatList;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  const li = el("li", "tb-msg");
  li.dataset.mine = String(Boolean(mine));
  const meta = el("span", "tb-msg__meta");
  meta.append(el("span", "tb-msg__from", mine ? "You" : name), el("time", "tb-msg__time"));
  li.append(meta, el("span", "tb-msg__text", String(text == null ? "" : text)));
  setChatTime(li, at);
  list.append(li);
  while (list.children.length > CHAT_KEEP) list.firstElementChild.remove();
  if (nearBottom || mine) list.scrollTop = list.scrollHeight;
  return li;
}

function setChatTime(li, at) {
  const time = li.querySelector("time");
  const d = new Date(at || Date.now());
  if (Number.isNaN(d.getTime())) return;
  time.dateTime = d.toISOString();
  time.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sendChat(e) {
  e.preventDefault();
  const text = ui.chatText.value.trim();
  if (!text || st.fatal) return;
  ui.chatText.value = "";
  const li = appendChat("You", text, new Date().toISOString(), true);
  li.dataset.pending = "true";
  const p = { text, li };
  st.pendingChats.push(p);
  const forget = () => {
    const i = st.pendingChats.indexOf(p);
    if (i >= 0) st.pendingChats.splice(i, 1);
  };
  act("chat", { text }).then(() => {
    // Without a websocket there is no echo: the POST is the confirmation.
    if (!st.wsOpen) {
      forget();
      li.dataset.pending = "false";
    }
    setTimeout(() => {
      forget();
      li.dataset.pending = "false";
    }, CHAT_ECHO_MS);
  }, () => {
    forget();
    li.dataset.pending = "failed";
    li.querySelector(".tb-msg__from").textContent = "You · not sent";
    if (!ui.chatText.value) ui.chatText.value = text;
  });
}

/* ------------------------------------------------------------- microphone */

const MIC_TEXT = {
  denied: "The microphone is blocked. Allow microphone access for this page (the icon in the address bar), then press Try again.",
  none: "No microphone found. Connect a microphone or headset, then press Try again.",
  busy: "The microphone could not be started; another application may be using it. Close it, then press Try again.",
  insecure: "This browser cannot use the microphone here: the page needs a secure (https) address.",
  ended: "The microphone was disconnected. Reconnect it, then press Try again.",
};

async function acquireMic() {
  if (st.fatal) return null;
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) {
    setMicError("insecure");
    return null;
  }
  let stream;
  try {
    stream = await md.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") setMicError("denied");
    else if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") setMicError("none");
    else if (name === "NotReadableError" || name === "AbortError" || name === "TrackStartError") setMicError("busy");
    else setMicError("other", err && err.message);
    return null;
  }
  const track = stream.getAudioTracks()[0];
  if (!track) {
    setMicError("none");
    return null;
  }
  if (st.fatal) {
    stream.getTracks().forEach((t) => t.stop());
    return null;
  }
  stopMic();
  st.mic = { stream, track, error: null };
  track.enabled = !st.coughHeld;
  track.addEventListener("ended", () => {
    if (st.mic.track !== track) return;
    stopMic();
    setMicError("ended");
    useMicInSession();
  });
  ui.micAlert.hidden = true;
  attachMicMeter();
  if (st.state) renderAirButtons();
  return track;
}

function setMicError(kind, message) {
  st.mic.error = kind;
  ui.micAlertText.textContent = MIC_TEXT[kind] ||
    sentence(`The microphone could not be started${message ? ": " + message : ""}`);
  ui.micAlert.hidden = false;
  ui.micRetry.hidden = kind === "insecure";
  if (st.state) renderAirButtons();
}

function stopMic() {
  const m = st.mic;
  if (m.stream) m.stream.getTracks().forEach((t) => t.stop());
  st.mic = { stream: null, track: null, error: m.error };
  if (audio.micSource) {
    try { audio.micSource.disconnect(); } catch (_) { /* not connected */ }
  }
  audio.micSource = null;
}

// Puts the current microphone track (or none) on the running session's first transceiver.
function useMicInSession() {
  const s = link.current;
  if (!s || !s.tMic) return;
  s.tMic.sender.replaceTrack(st.mic.track || null).catch(() => {
    startSession(true); // could not swap in place: start over
  });
}

async function retryMic() {
  ui.micRetry.disabled = true;
  try {
    const track = await acquireMic();
    if (track) useMicInSession();
  } finally {
    ui.micRetry.disabled = false;
  }
}

/* ------------------------------------------------------------ WHIP session */

async function start() {
  if (st.fatal || !token) {
    if (!token) setConnection("error", "This page address does not contain a booth link.");
    return;
  }
  sound.ensure();
  setConnection("connecting", "Waiting for the microphone…");
  await acquireMic();
  if (st.fatal || st.leaving) return;
  startSession(false);
}

// A new WHIP session (the lifecycle is link's, session.js).
function startSession(retry) {
  if (st.fatal || st.leaving) {
    link.stop();
    return Promise.resolve();
  }
  const s = link.begin({ tMic: null, tIn: null, tPartner: null });
  st.statsPrev = null;
  setConnection(retry ? "reconnecting" : "connecting",
    retry ? "Reconnecting the booth audio…" : "Connecting the booth audio…");
  return link.connect(s, whipUrl());
}

function prepareSession(s, pc) {
  // Order matters to the server: microphone, input, partner.
  s.tMic = st.mic.track
    ? pc.addTransceiver(st.mic.track, { direction: "sendonly" })
    : pc.addTransceiver("audio", { direction: "sendonly" });
  s.tIn = pc.addTransceiver("audio", { direction: "recvonly" });
  s.tPartner = pc.addTransceiver("audio", { direction: "recvonly" });
  s.playout = LOW_PLAYOUT_DELAY ? lowPlayoutDelay([s.tIn.receiver, s.tPartner.receiver]) : [];
  pc.ontrack = (e) => {
    if (s.closed) return;
    const role = roleOf(s, e);
    if (role) attachRemote(role, e.track);
  };
}

function roleOf(s, e) {
  const t = e.transceiver;
  if (t === s.tIn) return "input";
  if (t === s.tPartner) return "partner";
  if (t && t.mid != null) {
    if (t.mid === s.tIn.mid) return "input";
    if (t.mid === s.tPartner.mid) return "partner";
  }
  return null;
}

// The session failed and has ended: give up or retry.
function sessionFailed(err) {
  if (st.fatal || st.leaving) return;
  if (err && err.status === 401) {
    fatal(err.message);
    return;
  }
  const message = sentence(err && err.message ? err.message : "The connection failed");
  if (isPermanent(err)) {
    setConnection("error", message);
    return;
  }
  link.retry(err, (n) => `${message} Reconnecting in ${n} s.`);
}

/* -------------------------------------------------------------- WebAudio */

function unlockAudio() {
  sound.unlock([players.input, players.partner]);
}

// Received track → muted <audio> and → analyser + volume gain (audio.js).
function attachRemote(role, track) {
  const ctx = sound.ensure();
  players[role].attach(ctx, track, ctx && audio.gain[role], sound);
}

function attachMicMeter() {
  const ctx = sound.ensure();
  if (!ctx || !st.mic.stream) return;
  if (audio.micSource) {
    try { audio.micSource.disconnect(); } catch (_) { /* not connected */ }
  }
  if (!audio.micAnalyser) {
    audio.micAnalyser = ctx.createAnalyser();
    audio.micAnalyser.fftSize = MIC_FFT_SIZE;
    audio.micAnalyser.smoothingTimeConstant = 0;
    audio.micAnalyser.connect(audio.micSink);
  }
  audio.micSource = ctx.createMediaStreamSource(st.mic.stream);
  audio.micSource.connect(audio.micAnalyser);
}

function applyVolumes() {
  if (!sound.ctx) return;
  rampGain(audio.gain.input, Number(ui.inputVolume.value));
  rampGain(audio.gain.partner, Number(ui.partnerVolume.value));
}

/* ---------------------------------------------------------------- meters */

// RMS and sample peak of the microphone's newest samples, in dBFS.
function micLevel() {
  const an = audio.micAnalyser;
  if (!an || !audio.micSource) return { rms: -Infinity, peak: -Infinity };
  const buf = timeDomain(an, audio.micTap);
  let peak = 0;
  for (let i = 0; i < buf.length; i++) {
    const a = Math.abs(buf[i]);
    if (a > peak) peak = a;
  }
  return { rms: toDb(meanSquareTail(buf, buf.length)), peak: peak > 0 ? 20 * Math.log10(peak) : -Infinity };
}

function meterTick() {
  const now = performance.now();
  const lvl = micLevel();
  // Microphone: fast attack, gentle fall; peak hold; clip lamp.
  const target = fraction(lvl.rms);
  audio.micShown = Math.max(target, audio.micShown - 0.04);
  ui.micCover.style.transform = `scaleX(${(1 - audio.micShown).toFixed(3)})`;
  if (lvl.peak >= audio.peakDb || now - audio.peakAt > PEAK_HOLD_MS) {
    audio.peakDb = lvl.peak;
    audio.peakAt = now;
  }
  ui.micPeak.style.setProperty("--peak", fraction(audio.peakDb).toFixed(3));
  ui.micPeak.hidden = !(audio.peakDb > SILENCE_DB);
  if (lvl.peak > CLIP_DB) audio.clipUntil = now + CLIP_HOLD_MS;
  const clipping = now < audio.clipUntil;
  if (ui.clip.dataset.on !== String(clipping)) ui.clip.dataset.on = String(clipping);

  // Incoming input: a thin meter so the interpreter sees the floor arriving.
  const an = players.input.analyser;
  const inDb = an ? levelDb(an, players.input) : -Infinity;
  inputMeter.show(inDb);

  if (now - audio.ariaAt > 250) {
    audio.ariaAt = now;
    ui.micDb.textContent = lvl.rms > SILENCE_DB ? `${Math.round(lvl.rms)} dB` : "–";
    const micDb = meterDb(lvl.rms);
    ui.micMeter.setAttribute("aria-valuenow", String(micDb));
    ui.micMeter.setAttribute("aria-valuetext",
      lvl.rms > SILENCE_DB ? `${micDb} dB${clipping ? ", clipping" : ""}` : "silent");
    inputMeter.describe(inDb);
  }
}

/* ---------------------------------------------------------- line quality */

async function statsTick() {
  const s = link.current;
  if (!s || !s.pc || st.connection !== "connected") return;
  let report;
  try {
    report = await s.pc.getStats();
  } catch (_) {
    return;
  }
  if (s !== link.current) return;
  const byId = new Map();
  report.forEach((r) => byId.set(r.id, r));

  let pair = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId) || pair;
  });
  if (!pair) {
    report.forEach((r) => {
      if (!pair && r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
    });
  }
  let rtt = pair && typeof pair.currentRoundTripTime === "number" ? pair.currentRoundTripTime * 1000 : null;
  if (rtt === null) {
    report.forEach((r) => {
      if (r.type === "remote-inbound-rtp" && typeof r.roundTripTime === "number") rtt = r.roundTripTime * 1000;
    });
  }

  const trackId = players.input.track && players.input.track.id;
  let inbound = null;
  report.forEach((r) => {
    if (r.type !== "inbound-rtp" || (r.kind && r.kind !== "audio")) return;
    if ((s.tIn.mid != null && r.mid === s.tIn.mid) || (trackId && r.trackIdentifier === trackId)) inbound = r;
  });
  let jitter = null;
  let loss = null;
  if (inbound) {
    if (typeof inbound.jitter === "number") jitter = inbound.jitter * 1000;
    const lost = Number(inbound.packetsLost) || 0;
    const received = Number(inbound.packetsReceived) || 0;
    const prev = st.statsPrev;
    if (prev) {
      const dLost = Math.max(0, lost - prev.lost);
      const total = dLost + Math.max(0, received - prev.received);
      loss = total > 0 ? (100 * dLost) / total : 0;
    } else {
      const total = Math.max(0, lost) + received;
      loss = total > 0 ? (100 * Math.max(0, lost)) / total : null;
    }
    st.statsPrev = { lost, received };
  }
  showQuality({ rtt, loss, jitter });
}

function gradeOf(q) {
  const rtt = q.rtt || 0;
  const loss = q.loss || 0;
  const jitter = q.jitter || 0;
  if (rtt > 400 || loss > 5 || jitter > 60) return "poor";
  if (rtt > 200 || loss > 1 || jitter > 30) return "fair";
  return "good";
}

function showQuality(q) {
  if (!q) {
    st.quality = null;
    ui.quality.dataset.grade = "none";
    ui.quality.textContent = "Line: not connected";
    return;
  }
  const grade = gradeOf(q);
  st.quality = {
    grade,
    rtt_ms: q.rtt === null ? null : Math.round(q.rtt),
    loss_pct: q.loss === null ? null : Math.round(q.loss * 10) / 10,
    jitter_ms: q.jitter === null ? null : Math.round(q.jitter),
  };
  const parts = [
    `RTT ${q.rtt === null ? "–" : Math.round(q.rtt) + " ms"}`,
    `loss ${q.loss === null ? "–" : q.loss.toFixed(1) + " %"}`,
    `jitter ${q.jitter === null ? "–" : Math.round(q.jitter) + " ms"}`,
  ];
  ui.quality.dataset.grade = grade;
  ui.quality.replaceChildren("Line ", el("strong", "tb-grade", grade), ` · ${parts.join(" · ")}`);
}

/* ---------------------------------------------------------------- wiring */

function leave() {
  st.leaving = true;
  link.stop();
  stopPolling();
  closeWs();
  setCoughInputs(false, false);
}

function resume() {
  if (st.fatal) return;
  st.leaving = false;
  link.backoff.reset();
  st.wsBackoff.reset();
  startPolling();
  pollOnce();
  connectWs();
  if (!st.mic.track && st.mic.error !== "insecure") {
    start();
  } else {
    startSession(true);
  }
}

function init() {
  percentSlider(ui.inputVolume, ui.inputVolumeValue, INPUT_VOLUME_KEY, DEFAULT_INPUT_VOLUME, applyVolumes);
  percentSlider(ui.partnerVolume, ui.partnerVolumeValue, PARTNER_VOLUME_KEY, DEFAULT_PARTNER_VOLUME, applyVolumes);
  initCough();

  ui.offAir.addEventListener("click", goOffAir);
  ui.handoverRequest.addEventListener("click", requestHandover);
  ui.handoverAccept.addEventListener("click", acceptHandover);
  ui.slowDown.addEventListener("click", slowDown);
  ui.recConsent.addEventListener("change", setConsent);
  ui.chatForm.addEventListener("submit", sendChat);
  ui.micRetry.addEventListener("click", retryMic);
  ui.soundUnlock.addEventListener("click", unlockAudio);
  ui.useHere.addEventListener("click", () => location.reload()); // takes the booth back
  ui.reconnect.addEventListener("click", () => {
    link.backoff.reset();
    startSession(false);
  });
  // Any first gesture lets the browser play sound.
  const gesture = () => {
    if (sound.needsGesture) unlockAudio();
  };
  document.addEventListener("pointerdown", gesture, true);
  document.addEventListener("keydown", gesture, true);
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", () => {
      if (!st.fatal && !st.mic.track && (st.mic.error === "none" || st.mic.error === "ended")) retryMic();
    });
  }

  window.addEventListener("pagehide", leave);
  window.addEventListener("pageshow", (e) => {
    if (e.persisted) resume();
  });
  setInterval(statsTick, STATS_MS);

  if (!token) {
    setConnection("error", "This page address does not contain a booth link.");
    ui.title.textContent = "No booth link";
    return;
  }
  // ?autoplay=1 (tests, kiosk set-ups): make sure sound starts without waiting for a click.
  if (params.get("autoplay") === "1") sound.ensure();
  startPolling(); // until the websocket is open
  pollOnce();
  connectWs();
  start();
}

/*
 * Test hook for the automated browser test (and handy in the console).
 *   state            latest booth state JSON (a copy) or null
 *   connection       "idle" | "connecting" | "connected" | "reconnecting" | "error"
 *   socketOpen       the booth websocket is open (pushes arrive)
 *   message          the status line's sentence
 *   micLevelDb       microphone RMS level now, dBFS (-200 when silent / no microphone)
 *   quality          {grade, rtt_ms, loss_pct, jitter_ms} or null
 *   recording        {consent, mine}: my languages recorded now, and my consent
 *   call(action, body) → Promise<state>; rejects with an Error whose message is the detail
 *   measureInput(ms), measurePartner(ms) → Promise<{frequency, level_db, frames}>
 *   soundPrompts     times the page showed "Enable sound" (the browser held
 *                    the sound back)
 *   playout          the low playout delay settings the receivers took
 *                    (["jitterBufferTarget", "playoutDelayHint"], [] with
 *                    ?playout=default or in a browser with neither)
 *   recordOnsets(), onsetCount(), onsets() → Promise<{times, gaps, latency,
 *                    jitter_buffer}>: when
 *                    tone bursts begin in the input track (wall-clock ms) and the
 *                    quiet before each (measure.js, OnsetClock)
 */
window.tolkBooth = {
  get state() { return copy(st.state); },
  get connection() { return st.connection; },
  get socketOpen() { return st.wsOpen; },
  get message() { return ui.statusText.textContent; },
  get micLevelDb() {
    return reportDb(micLevel().rms);
  },
  get quality() { return copy(st.quality); },
  get recording() { return st.state ? recording() : null; },
  get muted() { return st.coughHeld || Boolean(st.state && st.state.muted); },
  call,
  refresh: () => fetchState().then(copy),
  measureInput: (ms) => measureTone(() => players.input.analyser, ms),
  measurePartner: (ms) => measureTone(() => players.partner.analyser, ms),
  get playout() { return link.current && link.current.playout ? link.current.playout.slice() : null; },
  get soundPrompts() { return sound.prompts; },
  ...onsetHooks(() => players.input.analyser, sound, () => link.current && link.current.tIn.receiver),
};

init();
