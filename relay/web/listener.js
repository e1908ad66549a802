/*
 * Tolk listener page (served as listener.html at /e/{event}).
 *
 * This file owns: loading the event and its channel list (refreshed while
 * playing, with who is speaking), the language picker, the WHEP receive
 * session (start / stop / switch language on the live session / reconnect
 * with backoff), the WebAudio graph (channel + floor mix, volume gain, level
 * meter, tone measurement) and the window.tolkListener test hook.
 * Markup lives in listener.html, looks in tolk.css. Shared with the booth
 * page: HTTP in http.js, the session lifecycle in session.js, WebAudio parts
 * in audio.js, the tone measurement in measure.js.
 *
 * The WHEP offer has two recvonly audio sections: the server sends the
 * chosen channel on the first and the floor (original speech) on the second.
 * The floor is mixed in under the channel by the "Original" slider.
 *
 * Every URL is resolved relative to the page, so the server may be mounted
 * behind a path prefix (https://host/prefix/e/{event}).
 *
 * Phones: the volume is a WebAudio gain (iOS ignores a media element's
 * volume), and where WebAudio cannot be used the media elements play and
 * only Mute works; sound starts from a tap ("Tap to listen" when the
 * browser holds it back); when the page is shown again (unlocked, tab
 * back) the sound resumes and a connection lost meanwhile is made again;
 * the language, volume and mute are remembered (localStorage; the
 * address's ?lang= wins). See docs/browsers.md.
 */
import { backoffSeconds, isPermanent, problemFrom, request, sentence } from "./http.js";
import { SessionLink, connectionState, jitterBuffer } from "./session.js";
import {
  FFT_SIZE, LevelMeter, PageAudio, SILENCE_DB, TrackPlayer, gainFor, levelDb, percentSlider, rampGain, volumeSettable,
} from "./audio.js";
import { measureTone as measureAnalyser, onsetHooks } from "./measure.js";
import { $, pageRoot, templated } from "./page.js";

const VOLUME_KEY = "tolk.listener.volume";
const DEFAULT_VOLUME = 80;
const ORIGINAL_KEY = "tolk.listener.original";
const DEFAULT_ORIGINAL = 0;
const MUTED_KEY = "tolk.listener.muted";
const LANGUAGE_KEY = "tolk.listener.language";
const REFRESH_MS = 5000; // channel list (who is speaking) while playing
// After the server confirmed a channel switch, audio of the old channel is
// still in flight and in the jitter buffer; this plus the measured playout
// delay and one analyser window is when the new channel is surely heard.
const SWITCH_SETTLE_MS = 200;
const SWITCH_WAIT_MAX_MS = 5000; // measureTone waits at most this for a pending switch

const ui = {
  title: $("event-title"),
  time: $("event-time"),
  channels: $("channels"),
  play: $("play"),
  playLabel: $("play-label"),
  iconPlay: $("icon-play"),
  iconStop: $("icon-stop"),
  status: $("status"),
  statusText: $("status-text"),
  hint: $("hint"),
  volume: $("volume"),
  volumeValue: $("volume-value"),
  volumeHelp: $("volume-help"),
  mute: $("mute"),
  muteLabel: $("mute-label"),
  iconWaves: $("icon-waves"),
  iconMuted: $("icon-muted"),
  originalField: $("original-field"),
  original: $("original"),
  originalValue: $("original-value"),
  originalHelp: $("original-help"),
  speaking: $("speaking"),
  speakingText: $("speaking-text"),
  meter: $("meter"),
  meterFill: $("meter-fill"),
  announce: $("announce"),
  audio: $("audio"),
  audioFloor: $("audio-floor"),
};

const params = new URLSearchParams(location.search);
// The page lives at {root}/e/{event}; everything else hangs off {root}.
const ROOT = pageRoot();
const eventId = templated("event", "EVENT_ID", "e");

const st = {
  state: "idle",
  message: "",
  language: null,
  channels: [],
  firstAudioMs: null,
  postAt: null, // performance.now() when the current WHEP or switch POST was sent
  wanted: false, // the listener asked to hear audio
  refreshTimer: 0,
  refreshing: false, // a channel list request is under way
  channelsAt: -Infinity, // performance.now() of the newest channel list
  muted: stored(MUTED_KEY) === "true",
};

// channel source → analyser (meter, measureTone) and → gain (volume, mute) → speakers
// floor source → floorGain (Original slider) → gain; gain → out (measureOutput)
const audio = {
  gain: null,
  floorGain: null,
  out: null,
  ariaAt: 0,
};
const channel = new TrackPlayer(ui.audio, true);
const floor = new TrackPlayer(ui.audioFloor, false);
const meter = new LevelMeter(ui.meter, ui.meterFill);
const sound = new PageAudio({
  build(ctx) {
    audio.gain = ctx.createGain();
    audio.gain.connect(ctx.destination);
    audio.out = ctx.createAnalyser();
    audio.out.fftSize = FFT_SIZE;
    audio.out.smoothingTimeConstant = 0;
    audio.gain.connect(audio.out);
    audio.floorGain = ctx.createGain();
    audio.floorGain.gain.value = 0;
    audio.floorGain.connect(audio.gain);
    applyVolume();
    applyOriginal();
  },
  tick: meterTick,
  wanted: () => st.wanted,
  gestureNeeded: renderPlayButton,
  woke,
});

// The WHEP session: the current one is link.current, see startSession().
const link = new SessionLink({
  headers: (extra) => extra,
  problem,
  prepare: prepareSession,
  ready: () => sound.started(),
  posting() { st.postAt = performance.now(); },
  answered: floorAnswered,
  connected: showSessionState,
  status: setState,
  failed: sessionFailed,
  restart: () => startSession(st.language, true),
  ended: sessionEnded,
});

/* ---------------------------------------------------------------- URLs */

const enc = encodeURIComponent;
const channelsUrl = () => new URL(`api/v1/events/${enc(eventId)}/channels`, ROOT).href;
const whepUrl = (language) => new URL(`whep/${enc(eventId)}/${enc(language)}`, ROOT).href;
const switchUrl = (s) => `${s.url.replace(/\/+$/, "")}/channel`;

/* ------------------------------------------------------------ HTTP helpers */

// An error answer as an HttpError (http.js) whose message is a sentence.
function problem(res) {
  return problemFrom(res, { fallback: { 503: "The event is full." } });
}

/* ------------------------------------------------------------- state line */

const STATE_TEXT = {
  idle: "Press Play to listen.",
  connecting: "Connecting…",
  listening: "Listening.",
  reconnecting: "Reconnecting…",
  error: "Something went wrong.",
};

// quiet: update the visible line only (countdown ticks), don't announce.
function setState(state, message, quiet) {
  message = message || STATE_TEXT[state];
  const changed = state !== st.state || message !== st.message;
  st.state = state;
  st.message = message;
  ui.status.dataset.state = state;
  document.body.dataset.state = state;
  ui.statusText.textContent = message;
  if (changed && !quiet) ui.announce.textContent = message;
}

function renderPlayButton() {
  const mode = sound.needsGesture ? "unlock" : st.wanted ? "stop" : "play";
  ui.play.dataset.mode = mode;
  ui.playLabel.textContent = { play: "Play", stop: "Stop", unlock: "Tap to listen" }[mode];
  ui.iconPlay.toggleAttribute("hidden", mode === "stop"); // SVG: no .hidden property
  ui.iconStop.toggleAttribute("hidden", mode !== "stop");
  ui.hint.hidden = !sound.needsGesture;
}

function renderMute() {
  ui.mute.setAttribute("aria-pressed", String(st.muted));
  ui.muteLabel.textContent = st.muted ? "Unmute" : "Mute";
  ui.iconWaves.toggleAttribute("hidden", st.muted);
  ui.iconMuted.toggleAttribute("hidden", !st.muted);
  // Without WebAudio where the page cannot set a media element's volume
  // (iOS), only Mute works: the slider says so.
  const fixed = sound.unsupported && !volumeSettable();
  ui.volume.disabled = fixed;
  ui.volumeHelp.hidden = !fixed;
}

/* --------------------------------------------------------- event + channels */

async function loadEvent(attempt) {
  attempt = attempt || 0;
  if (!eventId) {
    setState("error", "This page address does not name an event.");
    return;
  }
  try {
    const res = await request(channelsUrl(), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) throw await problem(res);
    const data = await res.json();
    st.channelsAt = performance.now();
    showEvent(data.event || {});
    showChannels(validChannels(data.channels));
  } catch (err) {
    if (isPermanent(err)) {
      ui.title.textContent = "Event not available";
      ui.channels.replaceChildren(note("No languages to choose from."));
      setState("error", err.message);
      return;
    }
    const wait = err.retryAfter || backoffSeconds(attempt);
    setState("error", `${err.message} Trying again in ${wait} s.`);
    setTimeout(() => loadEvent(attempt + 1), wait * 1000);
  }
}

function showEvent(ev) {
  const title = ev.title || eventId;
  ui.title.textContent = title;
  document.title = `${title} · Tolk`;
  ui.time.textContent = formatWindow(ev.starts_at, ev.ends_at) || "\u00a0";
}

function formatWindow(startsAt, endsAt) {
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  if (!startsAt || Number.isNaN(start.getTime())) return "";
  const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
  if (!endsAt || Number.isNaN(end.getTime())) return fmt.format(start);
  try {
    return fmt.formatRange(start, end);
  } catch (_) {
    return `${fmt.format(start)} – ${fmt.format(end)}`;
  }
}

function validChannels(list) {
  return (Array.isArray(list) ? list : []).filter((c) => c && typeof c.language === "string" && c.language);
}

function showChannels(list) {
  st.channels = list;
  ui.channels.replaceChildren(...st.channels.map(channelButton));
  if (!st.channels.length) {
    ui.channels.replaceChildren(note("No languages to choose from yet."));
    setState("error", "This event has no language channels yet.");
    return;
  }
  const pick = channelFor(params.get("lang")) || channelFor(stored(LANGUAGE_KEY)) ||
    st.channels.find((c) => c.kind === "floor") || st.channels[0];
  selectLanguage(pick.language);
  ui.play.disabled = false;
  setState("idle");
  if (params.get("autoplay") === "1") play();
}

// The periodic refresh (who is speaking). It never touches the selection and
// keeps the focus: buttons are rebuilt only when the set of channels changed,
// and then the one that had the focus gets it back. Errors are ignored; the
// next tick tries again and the audio session reports its own trouble.
async function refreshChannels() {
  if (st.refreshing || !eventId || !st.channels.length) return;
  st.refreshing = true;
  try {
    const res = await request(channelsUrl(), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) return;
    const data = await res.json();
    st.channelsAt = performance.now();
    if (data.event && data.event.title && data.event.title !== ui.title.textContent) showEvent(data.event);
    updateChannels(validChannels(data.channels));
  } catch (_) {
    /* not important */
  } finally {
    st.refreshing = false;
  }
}

function updateChannels(list) {
  if (!list.length) return;
  const old = st.channels;
  const same = list.length === old.length && list.every((c, i) =>
    c.language === old[i].language && c.kind === old[i].kind && c.label === old[i].label);
  st.channels = list;
  if (!same) {
    const active = document.activeElement;
    const focused = active && ui.channels.contains(active) ? active.dataset.language : null;
    ui.channels.replaceChildren(...list.map(channelButton));
    markSelected();
    const again = focused && buttonFor(focused);
    if (again) again.focus({ preventScroll: true });
  }
  renderSpeaking();
  renderOriginal();
}

function startRefresh() {
  if (performance.now() - st.channelsAt > REFRESH_MS) refreshChannels();
  if (st.refreshTimer) return;
  st.refreshTimer = setInterval(() => {
    if (document.visibilityState !== "hidden") refreshChannels();
  }, REFRESH_MS);
}

function stopRefresh() {
  clearInterval(st.refreshTimer);
  st.refreshTimer = 0;
}

// Who is heard on the selected channel, under the language buttons.
function renderSpeaking() {
  const ch = channelFor(st.language);
  const text = ch ? speakingText(ch) : "";
  ui.speaking.hidden = !text;
  ui.speaking.dataset.speaking =
    ch && ch.kind !== "floor" && ch.speaking === "interpreter" ? "interpreter" : "floor";
  if (ui.speakingText.textContent !== text) ui.speakingText.textContent = text;
}

function speakingText(ch) {
  if (ch.kind === "floor") return "Original speech";
  if (ch.speaking === "interpreter") return ch.interpreter ? `Interpreter: ${ch.interpreter}` : "An interpreter is on air";
  if (ch.speaking === "floor") return "Original speech (no interpreter on air)";
  return ""; // a server that does not say
}

function note(text) {
  const p = document.createElement("p");
  p.className = "t-muted";
  p.textContent = text;
  return p;
}

function channelButton(ch) {
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "t-choice";
  btn.dataset.language = ch.language;
  btn.setAttribute("aria-pressed", "false");

  const label = document.createElement("span");
  label.className = "t-choice__label";
  label.lang = ch.language;
  label.textContent = ch.label || ch.language;

  const meta = document.createElement("span");
  meta.className = "t-choice__meta";
  const code = document.createElement("span");
  code.className = "t-code";
  code.textContent = ch.language;
  meta.append(code);
  if (ch.kind === "floor") {
    const tag = document.createElement("span");
    tag.className = "t-tag";
    tag.textContent = "original";
    meta.append(tag);
  }

  btn.append(label, meta);
  btn.addEventListener("click", () => {
    selectLanguage(ch.language);
  });
  return btn;
}

function buttonFor(language) {
  for (const btn of ui.channels.querySelectorAll(".t-choice")) {
    if (btn.dataset.language === language) return btn;
  }
  return null;
}

function markSelected() {
  for (const btn of ui.channels.querySelectorAll(".t-choice")) {
    btn.setAttribute("aria-pressed", String(btn.dataset.language === st.language));
  }
}

function isFloor(language) {
  const ch = channelFor(language);
  return Boolean(ch && ch.kind === "floor");
}

function channelFor(language) {
  if (!language) return null;
  const want = String(language).toLowerCase();
  return st.channels.find((c) => c.language.toLowerCase() === want) || null;
}

function labelFor(language) {
  const ch = channelFor(language);
  return (ch && ch.label) || language;
}

// UI-level language choice: marks the button, remembers it in the URL and,
// while playing, moves playback over via switchChannel().
function selectLanguage(language) {
  const ch = channelFor(language);
  if (!ch) return Promise.reject(new Error(`No channel for language "${language}".`));
  if (ch.language === st.language) return Promise.resolve();
  st.language = ch.language;
  markSelected();
  renderSpeaking();
  renderOriginal();
  rememberLanguage(ch.language);
  if (!st.wanted && st.state === "error") setState("idle"); // a failed channel no longer matters
  return st.wanted ? switchChannel(ch.language) : Promise.resolve();
}

function rememberLanguage(language) {
  store(LANGUAGE_KEY, language);
  try {
    const url = new URL(location.href);
    url.searchParams.set("lang", language);
    history.replaceState(history.state, "", url);
  } catch (_) { /* not important */ }
}

/* ---------------------------------------------------------------- playback */

function play() {
  if (!st.language) return Promise.resolve();
  st.wanted = true;
  link.backoff.reset();
  sound.ensure();
  renderPlayButton();
  startRefresh();
  return startSession(st.language, false);
}

function stop() {
  st.wanted = false;
  sound.needsGesture = false;
  stopRefresh();
  link.stop();
  renderPlayButton();
  renderOriginal();
  setState("idle");
}

// The page is shown again (a phone unlocked, a tab back): PageAudio resumed
// the sound; a connection lost meanwhile is made again now.
function woke() {
  if (!st.wanted) return;
  startRefresh();
  if (!link.revive()) startSession(st.language, true);
}

function onPlayClick() {
  if (sound.needsGesture) unlockAudio();
  else if (st.wanted) stop();
  else play();
}

/*
 * Moves running playback to another channel. This is the only place that
 * knows how: POST {session}/channel {"language"} on the live WHEP session,
 * so the connection and the floor track stay as they are. Without a live
 * session (still connecting, waiting to retry), or when the server does not
 * switch it (404: the session is gone), a fresh WHEP session is started.
 * Resolves once the new channel is what the channel track plays.
 */
function switchChannel(language) {
  link.backoff.reset();
  const s = link.current;
  if (!s || !s.url || s.closed) return startSession(language, false);
  if (language === s.want) return s.switching || Promise.resolve();
  s.want = language;
  st.firstAudioMs = null;
  st.postAt = null;
  s.settleUntil = Infinity;
  showSessionState(s);
  if (s.wake) s.wake(); // a settle wait is moot: there is a newer choice
  if (!s.switching) s.switching = runSwitches(s);
  return s.switching;
}

// One request at a time, so the server ends on the listener's last choice
// however fast they click; then waits until the new channel is heard.
async function runSwitches(s) {
  try {
    for (;;) {
      while (s.want !== s.language) {
        const language = s.want;
        st.postAt = performance.now();
        const res = await request(switchUrl(s), {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ language }),
        });
        if (s !== link.current) return;
        if (!res.ok) throw await problem(res);
        s.language = language;
      }
      applyOriginal();
      showSessionState(s);
      await settle(s);
      if (s !== link.current || s.want === s.language) return;
    }
  } catch (err) {
    if (s !== link.current) return;
    // Gone (404) or not switchable: a fresh session reports its own errors.
    s.switching = null;
    await startSession(st.language, false);
  } finally {
    s.switching = null;
  }
}

// Until the old channel's packets have played out: a fixed margin, the
// receiver's jitter buffer delay and one analyser window.
async function settle(s) {
  const jitterMs = await playoutDelayMs(s);
  if (s !== link.current || s.want !== s.language) return;
  const windowMs = sound.ctx ? FFT_SIZE / sound.ctx.sampleRate * 1000 : 0;
  const ms = SWITCH_SETTLE_MS + jitterMs + windowMs;
  s.settleUntil = performance.now() + ms;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    s.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  s.wake = null;
}

// Average jitter buffer delay of the channel track (inbound-rtp stats).
async function playoutDelayMs(s) {
  const ms = (await jitterBuffer(s.channelTx.receiver)).average_ms;
  return ms === null ? 100 : Math.min(1000, Math.max(0, ms));
}

// The status line for session s, from its connection and any switch.
function showSessionState(s) {
  if (s.graceTimer) return; // "Connection interrupted…" stands until it recovers or fails
  if (s.want !== s.language) setState("connecting", `Switching to ${labelFor(s.want)}…`);
  else if (connectionState(s.pc) === "connected") setState("listening", `Listening to ${labelFor(s.language)}.`);
  else setState("connecting", `Connecting to ${labelFor(s.language)}…`);
}

/* ------------------------------------------------------------ WHEP session */

// A new WHEP session for language (the lifecycle is link's, session.js).
function startSession(language, retry) {
  const s = link.begin({
    language, // what the server sends on the channel track
    want: language, // what the listener chose; differs while a switch is under way
    channelTx: null, // transceiver of the chosen channel (first audio section)
    floorTx: null, // transceiver of the floor (second audio section)
    floorAvailable: null, // the answer sends the floor track; null until known
    switching: null, // the running switch, see switchChannel()
    settleUntil: 0, // performance.now() from which the channel track plays s.language
    wake: null, // ends a settle wait early
  });
  st.firstAudioMs = null;
  st.postAt = null;
  renderOriginal();
  setState(retry ? "reconnecting" : "connecting",
    `${retry ? "Reconnecting" : "Connecting"} to ${labelFor(language)}…`);
  return link.connect(s, whepUrl(language));
}

function prepareSession(s, pc) {
  // The order is the contract: the server sends the chosen channel on the
  // first audio section and the floor on the second.
  s.channelTx = pc.addTransceiver("audio", { direction: "recvonly" });
  s.floorTx = pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => {
    if (s.closed) return;
    const role = trackRole(s, e);
    if (role === "channel") {
      attachChannel(e.track);
    } else if (role === "floor") {
      s.floorAvailable = true;
      attachFloor(e.track);
      renderOriginal();
    }
  };
}

// A server that answers the second section inactive (or rejects it) sends
// no floor: the Original slider says so.
function floorAnswered(s) {
  const floorDir = s.floorTx.currentDirection;
  s.floorAvailable = Boolean(s.floorAvailable) || floorDir === "recvonly" || floorDir === "sendrecv";
  renderOriginal();
}

// Which track an ontrack event brings, by its transceiver's place in
// pc.getTransceivers() (not by the order the events arrive in).
function trackRole(s, e) {
  const all = s.pc.getTransceivers();
  const tx = e.transceiver || all.find((t) => t.receiver === e.receiver || t.receiver.track === e.track);
  if (tx === s.channelTx) return "channel";
  if (tx === s.floorTx) return "floor";
  return ["channel", "floor"][all.indexOf(tx)] || null;
}

// The session failed and has ended: give up or retry.
function sessionFailed(err) {
  if (!st.wanted) return;
  const message = sentence(err && err.message ? err.message : "The connection failed");
  if (isPermanent(err)) {
    st.wanted = false;
    sound.needsGesture = false;
    stopRefresh();
    renderPlayButton();
    setState("error", message);
    return;
  }
  const verb = err.status === 503 || err.status === 429 ? "Retrying" : "Reconnecting";
  link.retry(err, (n) => `${message} ${verb} in ${n} s.`);
}

function sessionEnded(s) {
  if (s.wake) s.wake();
  channel.detach();
  floor.detach();
  renderOriginal();
}

/* -------------------------------------------------------------- WebAudio */

function unlockAudio() {
  sound.unlock([channel, floor]);
}

// The channel → analyser (meter, measureTone) and → volume gain; the
// analyser comes before any gain: volume and the floor do not change the
// measurement. Without WebAudio the media elements play (audio.js).
function attachChannel(track) {
  const ctx = sound.ensure();
  channel.attach(ctx, track, ctx && audio.gain, sound);
  renderMute();
}

// The floor → floor gain (Original slider) → volume gain.
function attachFloor(track) {
  const ctx = sound.ensure();
  floor.attach(ctx, track, ctx && audio.floorGain, sound);
  applyOriginal();
}

function volumePercent() {
  return st.muted ? 0 : Number(ui.volume.value);
}

function applyVolume() {
  if (audio.gain) rampGain(audio.gain, volumePercent());
  else {
    channel.output(gainFor(volumePercent()));
    applyOriginal();
  }
}

function toggleMute() {
  st.muted = !st.muted;
  store(MUTED_KEY, String(st.muted));
  renderMute();
  applyVolume();
}

// The floor is mixed in only under an interpretation channel: on the floor
// channel both tracks carry the same sound. While a switch is under way
// both the chosen and the still-playing channel must be interpretations.
function applyOriginal() {
  const s = link.current;
  const playing = s ? s.language : st.language;
  const on = !isFloor(st.language) && !isFloor(playing);
  const percent = on ? Number(ui.original.value) : 0;
  if (audio.floorGain) rampGain(audio.floorGain, percent);
  else floor.output(gainFor(percent) * gainFor(volumePercent()));
}

// The Original slider: hidden without interpretation channels, disabled
// (with the reason) on the floor channel or without a floor track.
function renderOriginal() {
  const floorChosen = isFloor(st.language);
  const s = link.current;
  const missing = !floorChosen && Boolean(s && s.floorAvailable === false);
  const disabled = floorChosen || missing;
  ui.originalField.hidden = st.channels.length > 0 && st.channels.every((c) => c.kind === "floor");
  ui.original.disabled = disabled;
  ui.originalField.dataset.disabled = String(disabled);
  const help = floorChosen
    ? "You are listening to the original speech."
    : missing
      ? "The original speech is not available on this connection."
      : "Blends the speaker’s own voice in under the interpretation.";
  if (ui.originalHelp.textContent !== help) ui.originalHelp.textContent = help;
  applyOriginal();
}

/* ----------------------------------------------------------- level meter */

function meterTick() {
  const an = channel.analyser;
  if (!an && meter.shown === 0) return;
  const db = an ? levelDb(an, channel) : -Infinity;
  const s = link.current;
  // After a switch only once the new channel plays (see settle()).
  if (db > SILENCE_DB && st.firstAudioMs === null && st.postAt !== null && s &&
      performance.now() >= s.settleUntil) {
    st.firstAudioMs = Math.round(performance.now() - st.postAt);
  }
  meter.show(db);

  const now = performance.now();
  if (now - audio.ariaAt > 1000) {
    audio.ariaAt = now;
    meter.describe(db);
  }
}

/* -------------------------------------------------------- tone measurement */

// The channel track's tone over `ms` milliseconds (measure.js); only the
// channel track, before any gain: the floor mixed in is never measured.
// A channel switch under way is waited for first.
function measureTone(ms) {
  return switchSettled().then(() => measureAnalyser(() => channel.analyser, ms));
}

function switchSettled() {
  const s = link.current;
  if (!s || !s.switching) return Promise.resolve();
  return Promise.race([s.switching, new Promise((resolve) => setTimeout(resolve, SWITCH_WAIT_MAX_MS))]);
}

/* ---------------------------------------------------------------- wiring */

// localStorage, where the browser lets the page have it.
function stored(key) {
  try { return localStorage.getItem(key); } catch (_) { return null; }
}

function store(key, value) {
  try { localStorage.setItem(key, value); } catch (_) { /* storage disabled */ }
}

function init() {
  percentSlider(ui.volume, ui.volumeValue, VOLUME_KEY, DEFAULT_VOLUME, applyVolume);
  percentSlider(ui.original, ui.originalValue, ORIGINAL_KEY, DEFAULT_ORIGINAL, applyOriginal);
  renderPlayButton();
  renderMute();
  renderOriginal();
  ui.play.addEventListener("click", onPlayClick);
  ui.mute.addEventListener("click", toggleMute);
  // With ?autoplay=1 but no autoplay permission: any click unlocks sound.
  document.addEventListener("click", (e) => {
    if (sound.needsGesture && !ui.play.contains(e.target)) unlockAudio();
  });
  window.addEventListener("pagehide", () => link.end()); // back: woke()
  loadEvent(0);
}

/*
 * Test hook for the automated browser test (and handy in the console).
 *   state          "idle" | "connecting" | "listening" | "reconnecting" | "error"
 *   language       current language code (null before channels load)
 *   firstAudioMs   ms from sending the WHEP POST (or, after a language switch,
 *                  the switch POST) until the analyser first saw > -60 dBFS
 *                  of that channel; null until then; reset by every new POST
 *   channels       the channel list, refreshed every 5 s while playing, with
 *                  speaking ("floor" | "interpreter") and interpreter (name)
 *   measureTone(ms) → Promise<{frequency, level_db, frames}> of the channel
 *                  track only (never the floor mixed in by the Original
 *                  slider), before any gain; waits for a switch under way
 *   selectLanguage(lang) → Promise; while playing it resolves once the new
 *                  channel is what plays
 *   volume         {percent, muted, gain}: the slider, Mute, and the volume
 *                  gain node's value (null without WebAudio)
 *   measureOutput(ms) → like measureTone, after the volume gain (what is heard)
 *   audioState     the AudioContext's state ("none" before it exists)
 *   needsGesture   the browser holds the sound back until a tap
 *   recordOnsets(), onsetCount(), onsets() → Promise<{times, gaps, latency,
 *                  jitter_buffer}>: when
 *                  tone bursts begin in the channel track (wall-clock ms) and the
 *                  quiet before each (measure.js, OnsetClock)
 *   interrupt()    what a locked phone may do, for tests: the AudioContext
 *                  suspended and the connection gone, unnoticed until the
 *                  page is shown again
 */
window.tolkListener = {
  get state() { return st.state; },
  get message() { return st.message; },
  get language() { return st.language; },
  get firstAudioMs() { return st.firstAudioMs; },
  get channels() { return st.channels.map((c) => Object.assign({}, c)); },
  get volume() {
    return { percent: Number(ui.volume.value), muted: st.muted, gain: audio.gain ? audio.gain.gain.value : null };
  },
  get audioState() { return sound.ctx ? sound.ctx.state : "none"; },
  get needsGesture() { return sound.needsGesture; },
  measureTone,
  measureOutput: (ms) => measureAnalyser(() => audio.out, ms),
  play,
  stop,
  selectLanguage,
  interrupt() {
    const s = link.current;
    if (s && s.pc) {
      s.pc.onconnectionstatechange = s.pc.oniceconnectionstatechange = null;
      s.pc.close();
    }
    return sound.ctx ? sound.ctx.suspend() : Promise.resolve();
  },
  ...onsetHooks(() => channel.analyser, sound, () => link.current && link.current.channelTx.receiver),
};

init();
