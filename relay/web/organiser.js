/*
 * Tolk organiser console (served as organiser.html at /).
 *
 * This file owns: sign-in with a bearer token (kept in sessionStorage), the
 * event list, the event editor (create / change, with a debounced capacity
 * dry run shown next to the Save button), the capacity calendar, the event
 * detail (listener link and QR for the room, floor input, booth links, the
 * live view polled every 2 s with slow-down alerts, the recording section:
 * switch, state and files with players and downloads through the download
 * cookie, polled while on screen; the usage report and its downloads) and
 * the window.tolkOrganiser test hook.
 * Markup lives in organiser.html, looks in tolk.css (section "organiser").
 * HTTP helpers are shared with the other pages (http.js); the language
 * table is the server's own (languages.js, made by the relay from
 * relay/src/languages.rs).
 *
 * Every URL is relative to the page, so the server may be mounted behind a
 * path prefix (https://host/prefix/). Errors are problem+json: the page
 * always shows their "detail"; a 401 returns to the sign-in form.
 */
import { problemFrom, request, sentence } from "./http.js";
import { LANGUAGES } from "./languages.js";
import { $ } from "./page.js";

const TOKEN_KEY = "tolk.organiser.token";
const CAPACITY_DEBOUNCE_MS = 400;
const LIVE_MS = 2000;
const REFRESH_MS = 30000; // event list, statuses and calendar
const CAL_DAYS = 14;
const SLOW_RECENT_MS = 60000; // slow-downs already there when the live view opens still alert when this recent
const COPIED_MS = 2000;
const MIXED_CHANNEL_UNITS = 10; // as the server counts a mixed channel
const MAX_SUGGESTIONS = 8;
const RECORDING_MS = 3000; // recording state and files, while the section is on screen
const ACCESS_RENEW_MS = 50 * 60e3; // the download cookie lasts an hour

const ui = {
  user: $("user"),
  userText: $("user-text"),
  signOut: $("sign-out"),
  signin: $("signin"),
  signinForm: $("signin-form"),
  token: $("token"),
  signinButton: $("sign-in"),
  signinError: $("signin-error"),
  console: $("console"),
  main: $("main"),
  refresh: $("refresh"),
  newEvent: $("new-event"),
  eventList: $("event-list"),
  calRange: $("cal-range"),
  calPrev: $("cal-prev"),
  calToday: $("cal-today"),
  calNext: $("cal-next"),
  cal: $("cal"),
  calTip: $("cal-tip"),
  empty: $("empty"),
  tzName: $("tz-name"),
  editor: $("editor"),
  editorHeading: $("editor-heading"),
  evClose: $("ev-close"),
  form: $("ev-form"),
  title: $("ev-title"),
  starts: $("ev-starts"),
  ends: $("ev-ends"),
  tz: $("ev-tz"),
  floorLanguage: $("ev-floor-language"),
  listeners: $("ev-listeners"),
  chips: $("ev-languages"),
  langAdd: $("ev-language-add"),
  langOptions: $("ev-language-options"),
  langNote: $("ev-languages-note"),
  floorKind: $("ev-floor-kind"),
  mixDb: $("ev-mix-db"),
  meetingField: $("ev-meeting-field"),
  meetingId: $("ev-meeting-id"),
  recordField: $("ev-record-field"),
  record: $("ev-record"),
  locked: $("ev-locked"),
  formError: $("ev-error"),
  save: $("ev-save"),
  cancelEdit: $("ev-cancel-edit"),
  capacity: $("ev-capacity"),
  capacityText: $("ev-capacity-text"),
  capacityExtra: $("ev-capacity-extra"),
  detail: $("detail"),
  slowAlert: $("slow-alert"),
  slowAlertText: $("slow-alert-text"),
  slowAlertDismiss: $("slow-alert-dismiss"),
  dStatus: $("d-status"),
  dTitle: $("d-title"),
  dWhen: $("d-when"),
  dFacts: $("d-facts"),
  edit: $("ev-edit"),
  del: $("ev-delete"),
  tokenBox: $("floor-token-box"),
  floorToken: $("ev-floor-token"),
  tokenDone: $("floor-token-done"),
  listenerUrl: $("d-listener-url"),
  qr: $("d-qr"),
  qrOpen: $("qr-open"),
  dFloor: $("d-floor"),
  live: $("live"),
  liveUpdated: $("live-updated"),
  liveError: $("live-error"),
  boothLinks: $("booth-links"),
  blIssued: $("bl-issued"),
  blList: $("bl-list"),
  blForm: $("bl-form"),
  blName: $("bl-name"),
  blLanguages: $("bl-languages"),
  blIssue: $("bl-issue"),
  blConsent: $("bl-consent"),
  blPicks: $("bl-picks"),
  blError: $("bl-error"),
  recording: $("recording"),
  recUpdated: $("rec-updated"),
  recState: $("rec-state"),
  recStateText: $("rec-state-text"),
  recStateExtra: $("rec-state-extra"),
  recChoice: $("rec-choice"),
  recAll: $("rec-all"),
  recSome: $("rec-some"),
  recLangs: $("rec-langs"),
  recToggle: $("rec-toggle"),
  recProblem: $("rec-problem"),
  recError: $("rec-error"),
  recZip: $("rec-zip"),
  recDeleteAll: $("rec-delete-all"),
  recFiles: $("rec-files"),
  usageRefresh: $("usage-refresh"),
  usageJson: $("usage-json"),
  usageCsv: $("usage-csv"),
  usageBody: $("usage-body"),
  usageError: $("usage-error"),
  qrDialog: $("qr-dialog"),
  qrTitle: $("qr-title"),
  qrLarge: $("qr-large"),
  qrUrl: $("qr-url"),
  qrPrint: $("qr-print"),
  qrClose: $("qr-close"),
  confirm: $("confirm"),
  confirmText: $("confirm-text"),
  confirmOk: $("confirm-ok"),
  confirmCancel: $("confirm-cancel"),
  announce: $("announce"),
};

const st = {
  token: null,
  signedIn: false,
  events: [],
  languages: LANGUAGES,
  langByCode: new Map(LANGUAGES.map((l) => [l.code, l.label])),
  view: "empty", // "empty" | "editor" | "detail"
  selectedId: null,
  editor: { mode: "create", original: null, languages: [], active: -1, suggestions: [] },
  lastCapacityAnswer: null,
  capSeq: 0,
  capTimer: 0,
  capKey: null, // the form last checked
  saving: false,
  floorTokens: new Map(), // event id → floor token, shown once (kept for this page only)
  issued: new Map(), // event id → [{id, name, languages, booth_url}], shown once
  live: null, // { id, timer, seen: Set, first, data }
  usage: null,
  rec: null, // { id, timer, status, files, key, busy }: the recording section of the open event
  recAccess: new Map(), // event id → when its download cookie was set
  recInView: false,
  calStart: startOfDay(new Date()),
  calData: null,
  calSeq: 0,
  calKey: null,
  refreshTimer: 0,
  listSeq: 0,
};

/* ---------------------------------------------------------- small helpers */

const enc = encodeURIComponent;
const pad = (n) => String(n).padStart(2, "0");
const nf = new Intl.NumberFormat(undefined);
const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const fmtDayYear = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" });
const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fmtTimeSec = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const fmtShort = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const rtf = typeof Intl.RelativeTimeFormat === "function" ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
const TITLE = document.title;
const TZ = (() => {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (_) { return "local time"; }
})();

// el("div", {class: "x", onclick: f}, child, "text", …): DOM without innerHTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function announce(text) {
  ui.announce.textContent = "";
  requestAnimationFrame(() => { ui.announce.textContent = text; });
}

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

function addDays(d, n) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function day(d) {
  return (d.getFullYear() === new Date().getFullYear() ? fmtDay : fmtDayYear).format(d);
}

function fmtRange(from, to) {
  const a = new Date(from);
  const b = new Date(to);
  if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime())) return "";
  if (sameDay(a, b)) return `${day(a)}, ${fmtTime.format(a)}–${fmtTime.format(b)}`;
  // ends at midnight: still "that day until 24:00" in the reader's eyes
  if (b.getHours() === 0 && b.getMinutes() === 0 && sameDay(a, addDays(b, -1))) {
    return `${day(a)}, ${fmtTime.format(a)}–24:00`;
  }
  return `${day(a)}, ${fmtTime.format(a)} – ${day(b)}, ${fmtTime.format(b)}`;
}

function relative(ms) {
  if (!rtf) return "";
  const abs = Math.abs(ms);
  const sign = Math.sign(ms);
  if (abs < 60e3) return rtf.format(0, "minute");
  if (abs < 3600e3) return rtf.format(sign * Math.round(abs / 60e3), "minute");
  if (abs < 48 * 3600e3) return rtf.format(sign * Math.round(abs / 3600e3), "hour");
  return rtf.format(sign * Math.round(abs / 86400e3), "day");
}

// datetime-local value (browser's time zone) ↔ UTC ISO string
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return null;
  // "YYYY-MM-DDTHH:MM[:SS]" without an offset is local time
  const m = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$/.exec(value);
  if (!m) return null;
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  return Number.isNaN(d.getTime()) ? null : d;
}

function statusOf(ev, now) {
  now = now || Date.now();
  if (now < Date.parse(ev.starts_at)) return "upcoming";
  if (now >= Date.parse(ev.ends_at)) return "ended";
  return "live";
}

const STATUS_TEXT = { upcoming: "Upcoming", live: "Live now", ended: "Ended" };

function labelOf(code) {
  if (!code) return "";
  const exact = st.langByCode.get(code);
  if (exact) return exact;
  const [primary, ...rest] = code.split("-");
  const base = st.langByCode.get(primary.toLowerCase());
  return base ? `${base} (${rest.join("-")})` : code;
}

function fold(s) {
  return String(s).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().trim();
}

// A BCP 47 tag in the server's canonical case (fr, pt-BR, zh-Hant), or null.
function canonicalTag(s) {
  s = String(s).trim().replace(/_/g, "-");
  const parts = s.split("-");
  if (!/^[A-Za-z]{2,3}$/.test(parts[0])) return null;
  const out = [parts[0].toLowerCase()];
  for (const p of parts.slice(1)) {
    if (!/^[A-Za-z0-9]{1,8}$/.test(p)) return null;
    if (p.length === 2) out.push(p.toUpperCase());
    else if (p.length === 4) out.push(p[0].toUpperCase() + p.slice(1).toLowerCase());
    else out.push(p.toLowerCase());
  }
  return out.join("-");
}

// Languages matching what was typed: exact code, code prefix, name prefix, name contains.
function matchLanguages(query, exclude) {
  const q = fold(query);
  if (!q) return [];
  const ranked = [];
  for (const l of st.languages) {
    if (exclude && exclude.has(l.code)) continue;
    const code = l.code.toLowerCase();
    const name = fold(l.label);
    let rank = -1;
    if (code === q) rank = 0;
    else if (name === q) rank = 1;
    else if (code.startsWith(q)) rank = 2;
    else if (name.startsWith(q)) rank = 3;
    else if (name.includes(q)) rank = 4;
    if (rank >= 0) ranked.push({ rank, l });
  }
  ranked.sort((a, b) => a.rank - b.rank || a.l.label.localeCompare(b.l.label));
  return ranked.map((r) => r.l);
}

// Code for typed text: a code or name from the list, else a well-formed tag.
function resolveLanguage(text) {
  const t = String(text || "").trim();
  if (!t) return null;
  const lower = t.toLowerCase();
  for (const l of st.languages) if (l.code.toLowerCase() === lower) return l.code;
  const f = fold(t);
  for (const l of st.languages) if (fold(l.label) === f) return l.code;
  const tag = canonicalTag(t);
  if (tag && tag.includes("-")) return tag; // pt-BR, zh-Hant: a regional variant as typed
  const m = matchLanguages(t);
  if (m.length) return m[0].code;
  return tag; // a code the list does not know (the server checks it)
}

/* ------------------------------------------------------------------ HTTP */

// One API call with the bearer token. opts.raw: resolve with the Response.
async function api(method, path, body, opts) {
  opts = opts || {};
  const headers = { Accept: opts.accept || "application/json" };
  if (st.token) headers.Authorization = `Bearer ${st.token}`;
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await request(path, init, "Cannot reach the Tolk server. Check the connection and try again.");
  if (!res.ok) {
    const err = await problemFrom(res); // an HttpError: message a sentence, .status, .detail
    if (res.status === 401) signedOut(err.message);
    throw err;
  }
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  if (type.includes("json")) return res.json();
  const text = await res.text();
  try { return JSON.parse(text); } catch (_) { return text; }
}

/* ---------------------------------------------------------------- sign in */

function showSignIn(message) {
  document.body.dataset.signedIn = "false";
  ui.console.hidden = true;
  ui.user.hidden = true;
  ui.signin.hidden = false;
  ui.signinError.textContent = message || "";
  ui.token.setAttribute("aria-invalid", message ? "true" : "false");
  ui.token.focus();
}

function showConsole() {
  document.body.dataset.signedIn = "true";
  ui.signin.hidden = true;
  ui.console.hidden = false;
  ui.user.hidden = false;
  const tail = st.token.length > 8 ? ` · token …${st.token.slice(-4)}` : "";
  ui.userText.textContent = `Signed in${tail}`;
  ui.signinError.textContent = "";
}

async function signIn(token) {
  token = String(token || "").trim();
  if (!token) {
    showSignIn("Enter your access token.");
    return false;
  }
  st.token = token;
  ui.signinButton.disabled = true;
  ui.signinButton.textContent = "Signing in…";
  let events;
  try {
    events = await api("GET", "api/v1/events");
  } catch (err) {
    if (err.status !== 401) {
      st.token = null;
      showSignIn(err.message);
    } // a 401 already went back to the form with its sentence
    return false;
  } finally {
    ui.signinButton.disabled = false;
    ui.signinButton.textContent = "Sign in";
  }
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* private mode: this tab only */ }
  st.signedIn = true;
  ui.token.value = "";
  showConsole();
  setEvents(events);
  showEmpty();
  loadCalendar();
  scheduleRefresh();
  announce("Signed in.");
  ui.newEvent.focus();
  return true;
}

// Back to the form: after "Sign out", or with the sentence of a 401.
function signedOut(message) {
  const was = st.signedIn || st.token;
  st.signedIn = false;
  st.token = null;
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
  stopLive();
  stopRecordingView();
  st.recAccess.clear();
  clearTimeout(st.refreshTimer);
  clearTimeout(st.capTimer);
  st.capSeq++;
  st.calSeq++;
  st.listSeq++;
  st.events = [];
  st.selectedId = null;
  st.floorTokens.clear();
  st.issued.clear();
  st.lastCapacityAnswer = null;
  st.usage = null;
  closeDialogs();
  ui.editor.hidden = true;
  ui.detail.hidden = true;
  if (was || message) showSignIn(message || "");
}

function closeDialogs() {
  for (const d of [ui.qrDialog, ui.confirm]) if (d.open) d.close("cancel");
}

/* -------------------------------------------------------------- languages */

function fillFloorSelect() {
  const current = ui.floorLanguage.value;
  const sorted = st.languages.slice().sort((a, b) => a.label.localeCompare(b.label));
  ui.floorLanguage.replaceChildren(
    ...sorted.map((l) => el("option", { value: l.code, text: `${l.label} (${l.code})` }))
  );
  const original = st.editor.original && st.editor.original.floor_language;
  const want = original || current || (st.langByCode.has("en") ? "en" : sorted[0] && sorted[0].code);
  ensureFloorOption(want);
  ui.floorLanguage.value = want || "";
}

function ensureFloorOption(code) {
  if (!code) return;
  if (![...ui.floorLanguage.options].some((o) => o.value === code)) {
    ui.floorLanguage.append(el("option", { value: code, text: `${labelOf(code)} (${code})` }));
  }
}

/* ----------------------------------------------------------------- events */

async function refreshEvents() {
  const seq = ++st.listSeq;
  ui.eventList.setAttribute("aria-busy", "true");
  try {
    const events = await api("GET", "api/v1/events");
    if (seq !== st.listSeq) return;
    setEvents(events);
  } catch (err) {
    if (err.status === 401 || seq !== st.listSeq) return;
    ui.eventList.replaceChildren(el("p", { class: "to-error", text: err.message }));
  } finally {
    if (seq === st.listSeq) ui.eventList.setAttribute("aria-busy", "false");
  }
}

function setEvents(events) {
  st.events = Array.isArray(events) ? events : [];
  ui.eventList.setAttribute("aria-busy", "false");
  renderEventList();
  if (st.calData) renderCalendar();
  if (st.view === "detail") {
    const ev = findEvent(st.selectedId);
    if (ev) renderDetailHead(ev);
    else {
      announce("That event no longer exists.");
      showEmpty();
    }
  }
}

function findEvent(id) {
  return st.events.find((e) => e.id === id) || null;
}

async function refreshAll() {
  await Promise.all([refreshEvents(), loadCalendar()]);
}

function scheduleRefresh() {
  clearTimeout(st.refreshTimer);
  st.refreshTimer = setTimeout(async () => {
    if (!st.signedIn) return;
    await refreshAll();
    scheduleRefresh();
  }, REFRESH_MS);
}

function sortedGroups() {
  const now = Date.now();
  const groups = { live: [], upcoming: [], ended: [] };
  for (const ev of st.events) groups[statusOf(ev, now)].push(ev);
  const byStart = (a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at);
  groups.live.sort(byStart);
  groups.upcoming.sort(byStart);
  groups.ended.sort((a, b) => Date.parse(b.ends_at) - Date.parse(a.ends_at));
  return groups;
}

function renderEventList() {
  if (!st.signedIn) return;
  const groups = sortedGroups();
  const now = Date.now();
  const parts = [];
  for (const [key, heading] of [["live", "Live now"], ["upcoming", "Upcoming"], ["ended", "Ended"]]) {
    const list = groups[key];
    if (!list.length) continue;
    parts.push(el("h3", { class: "to-group__title", text: `${heading} (${list.length})` }));
    parts.push(el("ul", { class: "to-items" }, list.map((ev) => {
      const langs = (ev.languages || []).map((c) => c.toUpperCase()).join(" ");
      const when = key === "upcoming" ? `starts ${relative(Date.parse(ev.starts_at) - now)}`
        : key === "live" ? `ends ${relative(Date.parse(ev.ends_at) - now)}` : "";
      return el("li", null, el("button", {
        type: "button",
        class: "to-item",
        "data-id": ev.id,
        "data-status": key,
        "aria-current": st.selectedId === ev.id && st.view !== "editor" ? "true" : null,
        onclick: () => openDetail(ev.id, true),
      },
      el("span", { class: "to-item__top" },
        el("span", { class: "to-item__title", text: ev.title }),
        el("span", { class: "to-badge", "data-status": key, text: STATUS_TEXT[key] })),
      el("span", { class: "to-item__when", text: fmtRange(ev.starts_at, ev.ends_at) }),
      el("span", { class: "to-item__meta" },
        el("span", { class: "t-code", text: String(ev.floor_language || "").toUpperCase() }),
        langs ? el("span", { "aria-hidden": "true", text: "→" }) : null,
        langs ? el("span", { class: "t-code", text: langs }) : null,
        el("span", { text: `· ${nf.format(ev.expected_listeners)} listeners` })),
      when ? el("span", { class: "to-item__rel", text: when }) : null));
    })));
  }
  if (!parts.length) {
    parts.push(el("div", { class: "to-none" },
      el("p", { text: "No events yet." }),
      el("p", { class: "t-muted to-small", text: "Create one with “New event”: pick the languages and the time, and Tolk checks it fits before you save." })));
  }
  const focused = document.activeElement;
  const refocus = focused && ui.eventList.contains(focused) && focused.dataset.id;
  ui.eventList.replaceChildren(...parts);
  if (refocus) {
    const again = [...ui.eventList.querySelectorAll(".to-item")].find((b) => b.dataset.id === refocus);
    if (again) again.focus();
  }
}

/* ------------------------------------------------------------------ views */

function setView(view) {
  st.view = view;
  ui.empty.hidden = view !== "empty";
  ui.editor.hidden = view !== "editor";
  ui.detail.hidden = view !== "detail";
  if (view !== "detail") {
    stopLive();
    stopRecordingView();
    ui.slowAlert.hidden = true;
    document.title = TITLE;
  }
  st.capKey = null;
  if (view !== "editor") {
    clearTimeout(st.capTimer);
    st.capSeq++;
    closeSuggestions();
  }
  renderEventList();
}

function showEmpty() {
  st.selectedId = null;
  setView("empty");
}

/* ----------------------------------------------------------------- editor */

function openEditor(mode, ev) {
  const ed = st.editor;
  ed.mode = mode;
  ed.original = mode === "edit" ? ev : null;
  ed.languages = mode === "edit" ? (ev.languages || []).slice() : [];
  if (mode === "create") st.selectedId = null;
  setView("editor");
  ui.editorHeading.textContent = mode === "edit" ? `Edit “${ev.title}”` : "New event";
  ui.save.textContent = mode === "edit" ? "Save changes" : "Create event";
  ui.formError.textContent = "";
  ui.langNote.textContent = "";
  ui.langAdd.value = "";
  fillFloorSelect();
  if (mode === "edit") {
    ui.title.value = ev.title;
    ensureFloorOption(ev.floor_language);
    ui.floorLanguage.value = ev.floor_language;
    ui.starts.value = toLocalInput(ev.starts_at);
    ui.ends.value = toLocalInput(ev.ends_at);
    ui.listeners.value = String(ev.expected_listeners);
    ui.floorKind.value = (ev.floor && ev.floor.kind) || "whip";
    ui.meetingId.value = (ev.floor && ev.floor.meeting_id) || "";
    ui.mixDb.value = ev.floor_under_interpretation_db == null ? "" : String(ev.floor_under_interpretation_db);
  } else {
    const start = new Date();
    start.setMinutes(0, 0, 0);
    start.setHours(start.getHours() + 1);
    const end = new Date(start.getTime() + 2 * 3600e3);
    ui.title.value = "";
    ui.starts.value = toLocalInput(start.toISOString());
    ui.ends.value = toLocalInput(end.toISOString());
    ui.listeners.value = "100";
    ui.floorKind.value = "whip";
    ui.meetingId.value = "";
    ui.mixDb.value = "";
  }
  for (const f of [ui.floorLanguage, ui.floorKind, ui.meetingId, ui.mixDb]) f.disabled = mode === "edit";
  ui.meetingField.hidden = ui.floorKind.value !== "bbb";
  ui.locked.hidden = mode !== "edit";
  ui.recordField.hidden = mode === "edit";
  ui.record.checked = false;
  renderChips();
  scheduleCapacity();
  ui.title.focus();
}

function closeEditor() {
  const ed = st.editor;
  if (ed.mode === "edit" && ed.original && findEvent(ed.original.id)) openDetail(ed.original.id, true);
  else showEmpty();
}

function renderChips() {
  const chips = st.editor.languages.map((code) => el("li", { class: "to-chip", "data-code": code },
    el("span", { class: "to-chip__label", text: labelOf(code) }),
    el("span", { class: "to-chip__code t-code", text: code }),
    el("button", {
      type: "button",
      class: "to-chip__remove",
      "aria-label": `Remove ${labelOf(code)}`,
      title: `Remove ${labelOf(code)}`,
      onclick: () => removeLanguage(code, true),
    }, "×")));
  if (!chips.length) chips.push(el("li", { class: "to-chips__none t-muted", text: "None yet: listeners hear only the floor." }));
  ui.chips.replaceChildren(...chips);
}

function addLanguage(code) {
  const ed = st.editor;
  if (!code) return false;
  if (code === ui.floorLanguage.value) {
    ui.langNote.textContent = `${labelOf(code)} is the floor language: it has its channel already.`;
    return false;
  }
  if (ed.languages.includes(code)) {
    ui.langNote.textContent = `${labelOf(code)} is already on the list.`;
    return false;
  }
  ed.languages.push(code);
  ui.langNote.textContent = "";
  renderChips();
  announce(`Added ${labelOf(code)}. ${ed.languages.length} interpretation language${ed.languages.length === 1 ? "" : "s"}.`);
  scheduleCapacity();
  return true;
}

function removeLanguage(code, focusInput) {
  const ed = st.editor;
  const i = ed.languages.indexOf(code);
  if (i < 0) return;
  ed.languages.splice(i, 1);
  renderChips();
  announce(`Removed ${labelOf(code)}.`);
  scheduleCapacity();
  if (focusInput) ui.langAdd.focus();
}

function suggestions() {
  const exclude = new Set(st.editor.languages);
  exclude.add(ui.floorLanguage.value);
  return matchLanguages(ui.langAdd.value, exclude).slice(0, MAX_SUGGESTIONS);
}

function openSuggestions() {
  const ed = st.editor;
  ed.suggestions = suggestions();
  if (ed.active >= ed.suggestions.length) ed.active = ed.suggestions.length - 1;
  if (!ed.suggestions.length) return closeSuggestions();
  ui.langOptions.replaceChildren(...ed.suggestions.map((l, i) => el("li", {
    id: `ev-language-option-${i}`,
    class: "to-option",
    role: "option",
    "data-code": l.code,
    "aria-selected": i === ed.active ? "true" : "false",
    onmousedown: (e) => e.preventDefault(), // keep focus in the input
    onclick: () => pickSuggestion(i),
  }, el("span", { text: l.label }), el("span", { class: "t-code to-option__code", text: l.code }))));
  ui.langOptions.hidden = false;
  ui.langAdd.setAttribute("aria-expanded", "true");
  if (ed.active >= 0) {
    ui.langAdd.setAttribute("aria-activedescendant", `ev-language-option-${ed.active}`);
    const opt = $(`ev-language-option-${ed.active}`);
    if (opt && opt.scrollIntoView) opt.scrollIntoView({ block: "nearest" });
  } else ui.langAdd.removeAttribute("aria-activedescendant");
}

function closeSuggestions() {
  st.editor.active = -1;
  st.editor.suggestions = [];
  ui.langOptions.hidden = true;
  ui.langOptions.replaceChildren();
  ui.langAdd.setAttribute("aria-expanded", "false");
  ui.langAdd.removeAttribute("aria-activedescendant");
}

function pickSuggestion(i) {
  const l = st.editor.suggestions[i];
  if (!l) return;
  if (addLanguage(l.code)) ui.langAdd.value = "";
  closeSuggestions();
  ui.langAdd.focus();
}

function onLanguageKey(e) {
  const ed = st.editor;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    if (ui.langOptions.hidden) { ed.active = -1; openSuggestions(); }
    const n = ed.suggestions.length;
    if (!n) return;
    ed.active = e.key === "ArrowDown" ? (ed.active + 1) % n : (ed.active <= 0 ? n - 1 : ed.active - 1);
    openSuggestions();
  } else if (e.key === "Enter") {
    e.preventDefault(); // never submits the form
    if (ed.active >= 0 && !ui.langOptions.hidden) return pickSuggestion(ed.active);
    const text = ui.langAdd.value;
    if (!text.trim()) return;
    // "fr, de" adds both
    const items = text.split(/[,;]+/).map((s) => s.trim()).filter(Boolean);
    const unknown = [];
    for (const item of items) {
      const code = resolveLanguage(item);
      if (code) addLanguage(code); // a refusal (floor, twice) explains itself in the note
      else unknown.push(item);
    }
    if (unknown.length) {
      ui.langNote.textContent = `No language matches “${unknown.join(", ")}”. Type a name such as Français or a code such as fr.`;
    }
    ui.langAdd.value = unknown.join(", ");
    closeSuggestions();
  } else if (e.key === "Escape") {
    if (!ui.langOptions.hidden) { e.preventDefault(); closeSuggestions(); }
  } else if (e.key === "Backspace" && !ui.langAdd.value && ed.languages.length) {
    removeLanguage(ed.languages[ed.languages.length - 1], false);
  } else if (e.key === "Tab") {
    closeSuggestions();
  }
}

// The request body from the form (create), or null with ui messages when incomplete.
function formBody(forDryRun) {
  const starts = fromLocalInput(ui.starts.value);
  const ends = fromLocalInput(ui.ends.value);
  const lRaw = ui.listeners.value.trim();
  const listeners = lRaw === "" ? NaN : Number(lRaw);
  const mixRaw = ui.mixDb.value.trim();
  const mix = mixRaw === "" ? null : Number(mixRaw);
  const floor = ui.floorLanguage.value;
  const title = ui.title.value.trim();
  let problem = null;
  if (!starts || !ends) problem = { state: "idle", text: "Enter when the event starts and ends to check capacity." };
  else if (ends <= starts) problem = { state: "invalid", text: "The end must be after the start." };
  else if (lRaw === "") problem = { state: "idle", text: "Enter the expected listeners to check capacity." };
  else if (!Number.isInteger(listeners) || listeners < 1) problem = { state: "invalid", text: "Expected listeners must be a whole number of at least 1." };
  else if (mix !== null && (!Number.isFinite(mix) || mix < -60 || mix > 0)) problem = { state: "invalid", text: "The floor level under interpretation is between −60 and 0 dB, or empty for pass-through." };
  else if (!floor) problem = { state: "idle", text: "Choose the floor language." };
  else if (ui.floorKind.value === "bbb" && !ui.meetingId.value.trim() && !forDryRun) problem = { state: "invalid", text: "Enter the BigBlueButton meeting ID." };
  if (problem) return { problem };
  return {
    body: {
      title: title || (forDryRun ? "Untitled event" : ""),
      floor_language: floor,
      languages: st.editor.languages.filter((c) => c !== floor),
      starts_at: starts.toISOString(),
      ends_at: ends.toISOString(),
      expected_listeners: listeners,
      floor: floorBody(forDryRun),
      floor_under_interpretation_db: mix,
    },
  };
}

function floorBody(forDryRun) {
  const kind = ui.floorKind.value;
  if (kind === "bbb") return { kind, meeting_id: ui.meetingId.value.trim() || (forDryRun ? "dry-run" : "") };
  return { kind: kind === "rtp" ? "rtp" : "whip" };
}

/* ------------------------------------------------------- capacity answer */

function setCapacity(state, text, extra) {
  ui.capacity.dataset.state = state;
  ui.capacityText.textContent = text;
  ui.capacityExtra.replaceChildren(...(extra || []));
}

function scheduleCapacity() {
  if (st.view !== "editor") return;
  const { body, problem } = formBody(true);
  // A "change" after the "input" that scheduled this very form (blur) is no news:
  // keep the answer (and its buttons) as they are.
  const key = JSON.stringify([st.editor.mode, body || problem]);
  if (key === st.capKey) return;
  st.capKey = key;
  clearTimeout(st.capTimer);
  st.capSeq++;
  st.lastCapacityAnswer = null;
  if (problem) {
    setCapacity(problem.state, problem.text);
    return;
  }
  setCapacity("checking", "Checking capacity…");
  st.capTimer = setTimeout(runCapacity, CAPACITY_DEBOUNCE_MS);
}

async function runCapacity() {
  const seq = st.capSeq;
  const { body, problem } = formBody(true);
  if (problem) return setCapacity(problem.state, problem.text);
  try {
    let answer;
    if (st.editor.mode === "edit") answer = await estimateChange(body, st.editor.original);
    else {
      const res = await api("POST", "api/v1/events?dry_run=true", body);
      answer = res && res.fits === false ? { fits: false, detail: String(res.detail || "It does not fit.") } : { fits: true };
    }
    if (seq !== st.capSeq) return;
    showCapacityAnswer(answer);
  } catch (err) {
    if (seq !== st.capSeq || err.status === 401) return;
    if (err.status === 409) showCapacityAnswer({ fits: false, detail: err.detail || err.message });
    else if (err.status === 400 || err.status === 422) setCapacity("invalid", err.message);
    else setCapacity("error", `Could not check capacity: ${err.message}`);
  }
}

function showCapacityAnswer(answer) {
  st.lastCapacityAnswer = answer.fits ? { fits: true } : { fits: false, detail: answer.detail };
  if (answer.fits) {
    setCapacity("fits", "Fits");
    return;
  }
  const extra = [];
  const stamps = String(answer.detail).match(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})/g);
  if (stamps && stamps.length >= 2) {
    extra.push(el("span", { class: "to-small to-block", text: `Short window in your time: ${fmtRange(stamps[0], stamps[1])}.` }));
  }
  const largest = /largest expected_listeners that fits is (\d+)/i.exec(answer.detail);
  if (largest && Number(largest[1]) > 0) {
    const n = Number(largest[1]);
    extra.push(el("button", {
      id: "ev-capacity-use",
      type: "button",
      class: "t-btn to-btn-sm to-capacity__use",
      onclick: () => {
        ui.listeners.value = String(n);
        scheduleCapacity();
        ui.listeners.focus();
      },
    }, `Use ${nf.format(n)} listeners`));
  }
  setCapacity("short", answer.detail, extra);
}

// Editing: the event's own reservation is on the calendar already, so check
// the change against the free capacity with the event's old share added back.
async function estimateChange(body, original) {
  const data = await api("GET", `api/v1/capacity?from=${enc(body.starts_at)}&to=${enc(body.ends_at)}`);
  const mixed = original.floor_under_interpretation_db != null;
  const units = (n) => 1 + n * (mixed ? MIXED_CHANNEL_UNITS : 1);
  const needL = body.expected_listeners;
  const needC = units(body.languages.length);
  const oS = Date.parse(original.starts_at);
  const oE = Date.parse(original.ends_at);
  let worstL = null;
  let worstC = null;
  for (const s of (data && data.segments) || []) {
    const t = Date.parse(s.from);
    const own = oS <= t && oE > t;
    const fl = s.free_listeners + (own ? original.expected_listeners : 0);
    const fc = s.free_channels + (own ? units((original.languages || []).length) : 0);
    if (!worstL || fl < worstL.free) worstL = { s, free: fl };
    if (!worstC || fc < worstC.free) worstC = { s, free: fc };
  }
  if (worstC && worstC.free < needC) {
    const free = Math.max(0, worstC.free);
    return { fits: false, detail: `not enough channel capacity from ${worstC.s.from} to ${worstC.s.to}: ${free} channel units are free there and this event needs ${needC} (short by ${needC - free}; a mixed channel counts ${MIXED_CHANNEL_UNITS}). Fewer languages or another time would fit.` };
  }
  if (worstL && worstL.free < needL) {
    const free = Math.max(0, worstL.free);
    return { fits: false, detail: `not enough listener capacity from ${worstL.s.from} to ${worstL.s.to}: ${free} listeners are free there and this event expects ${needL} (short by ${needL - free}). The largest expected_listeners that fits is ${free}.` };
  }
  return { fits: true };
}

/* ------------------------------------------------------------------- save */

async function save(e) {
  if (e) e.preventDefault();
  if (st.saving) return;
  ui.formError.textContent = "";
  const { body, problem } = formBody(false);
  if (!ui.title.value.trim()) {
    ui.formError.textContent = "Enter a title for the event.";
    ui.title.setAttribute("aria-invalid", "true");
    ui.title.focus();
    return;
  }
  ui.title.removeAttribute("aria-invalid");
  if (problem) {
    ui.formError.textContent = problem.text.replace(/ to check capacity\.$/, ".");
    return;
  }
  st.saving = true;
  ui.save.disabled = true;
  const label = ui.save.textContent;
  ui.save.textContent = "Saving…";
  try {
    if (st.editor.mode === "edit") await saveChange(body);
    else await saveNew(body);
  } catch (err) {
    if (err.status === 401) return;
    if (err.status === 409) {
      clearTimeout(st.capTimer);
      st.capSeq++;
      st.capKey = JSON.stringify([st.editor.mode, body]);
      showCapacityAnswer({ fits: false, detail: err.detail || err.message });
      ui.formError.textContent = `Not saved: ${err.message}`;
    } else {
      ui.formError.textContent = err.message;
    }
    announce(`Not saved. ${err.message}`);
  } finally {
    st.saving = false;
    ui.save.disabled = false;
    ui.save.textContent = label;
  }
}

async function saveNew(body) {
  if (ui.record.checked) body.recording = { channels: "all" };
  const ev = await api("POST", "api/v1/events", body);
  rememberCreated(ev);
  await refreshAll();
  if (!findEvent(ev.id)) st.events.push(ev);
  openDetail(ev.id, false);
  announce(`Event “${ev.title}” created. Copy the floor token now: it is shown only once.`);
  const copy = ui.tokenBox.querySelector("[data-copy]");
  if (copy && !ui.tokenBox.hidden) copy.focus();
}

function rememberCreated(ev) {
  if (ev && ev.floor && ev.floor.token) st.floorTokens.set(ev.id, ev.floor.token);
}

async function saveChange(body) {
  const o = st.editor.original;
  const change = {};
  if (body.title !== o.title) change.title = body.title;
  if (JSON.stringify(body.languages) !== JSON.stringify(o.languages || [])) change.languages = body.languages;
  if (Date.parse(body.starts_at) !== Date.parse(o.starts_at)) change.starts_at = body.starts_at;
  if (Date.parse(body.ends_at) !== Date.parse(o.ends_at)) change.ends_at = body.ends_at;
  if (body.expected_listeners !== o.expected_listeners) change.expected_listeners = body.expected_listeners;
  if (!Object.keys(change).length) {
    announce("Nothing changed.");
    openDetail(o.id, true);
    return;
  }
  const ev = await api("PATCH", `api/v1/events/${enc(o.id)}`, change);
  const i = st.events.findIndex((x) => x.id === o.id);
  if (i >= 0 && ev && ev.id) st.events[i] = ev;
  openDetail(o.id, true);
  announce("Changes saved.");
  refreshAll();
}

/* ----------------------------------------------------------------- detail */

function openDetail(id, focus) {
  const ev = findEvent(id);
  if (!ev) return;
  const changed = st.selectedId !== id || st.view !== "detail";
  st.selectedId = id;
  setView("detail");
  if (changed) {
    ui.slowAlert.hidden = true;
    document.title = TITLE;
    ui.blError.textContent = "";
    ui.blName.value = "";
    ui.blLanguages.value = "";
    ui.blConsent.checked = false;
    renderDetail(false);
    loadInterpreters(id);
    startLive(id);
    startRecordingView(id);
    st.usage = null;
    ui.usageError.textContent = "";
    if (statusOf(ev) !== "upcoming") loadUsage(id);
    else ui.usageBody.replaceChildren(el("p", { class: "t-muted", text: "The report fills in once the event has started." }));
  }
  if (focus) ui.dTitle.focus();
}

function renderDetail(keepSections) {
  const ev = findEvent(st.selectedId);
  if (!ev) return;
  renderDetailHead(ev);
  renderIssued(ev.id);
  renderPicks(ev);
  renderRecChoice(ev);
  if (keepSections && st.live && st.live.data) renderLive(st.live.data);
}

function renderDetailHead(ev) {
  const status = statusOf(ev);
  ui.dStatus.dataset.status = status;
  ui.dStatus.textContent = STATUS_TEXT[status];
  ui.dTitle.textContent = ev.title;
  const now = Date.now();
  const rel = status === "upcoming" ? ` · starts ${relative(Date.parse(ev.starts_at) - now)}`
    : status === "live" ? ` · ends ${relative(Date.parse(ev.ends_at) - now)}` : "";
  ui.dWhen.textContent = `${fmtRange(ev.starts_at, ev.ends_at)}${rel}`;
  ui.edit.disabled = status === "ended";
  ui.edit.title = status === "ended" ? "An ended event cannot change" : "";

  const langs = ev.languages || [];
  const mixed = ev.floor_under_interpretation_db != null;
  const facts = [
    ["Floor", el("span", null, labelOf(ev.floor_language), " ", el("span", { class: "t-code to-dim", text: ev.floor_language }))],
    ["Interpretation", langs.length
      ? el("span", { class: "to-pick-row" }, langs.map((c) => el("span", { class: "t-tag", title: c, text: `${labelOf(c)} · ${c}` })))
      : el("span", { class: "t-muted", text: "none (floor only)" })],
    ["Listeners", `${nf.format(ev.expected_listeners)} expected`],
    ["Channels", `${1 + langs.length} (${mixed ? `mixed: floor at ${ev.floor_under_interpretation_db} dB under interpretation` : "pass-through"})`],
    ["Event id", el("code", { class: "to-dim", text: ev.id })],
  ];
  ui.dFacts.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", null, v)]));

  const token = st.floorTokens.get(ev.id);
  ui.tokenBox.hidden = !token;
  ui.floorToken.textContent = token || "";

  const url = ev.listener_url || new URL(`e/${enc(ev.id)}`, document.baseURI).href;
  ui.listenerUrl.textContent = url;
  ui.listenerUrl.href = url;
  const qr = `e/${enc(ev.id)}/qr.svg`;
  if (ui.qr.getAttribute("src") !== qr) ui.qr.setAttribute("src", qr);

  const floor = ev.floor || {};
  const kindText = { rtp: "RTP", bbb: "BigBlueButton" }[floor.kind] || "WHIP";
  const how = {
    rtp: " — send Opus over RTP to the address below.",
    bbb: " — Tolk joins the meeting as a listen-only bot and takes its audio.",
  }[floor.kind] || " — publish the floor audio with WHIP (OBS, a browser).";
  const rows = [el("p", null, el("strong", { text: kindText }), how)];
  if (floor.kind === "bbb") {
    rows.push(copyRow("Meeting ID", floor.meeting_id || ""));
    if (floor.state) rows.push(bbbState(floor.state));
  }
  if (floor.rtp_url) rows.push(copyRow("RTP address", floor.rtp_url));
  if (floor.whip_url) rows.push(copyRow("WHIP URL", floor.whip_url));
  if (!floor.rtp_url && floor.kind === "rtp") rows.push(el("p", { class: "t-muted to-small", text: "The RTP address is assigned by the server." }));
  rows.push(el("p", { class: "t-muted to-small", text: "The floor token was shown once, when the event was created." }));
  ui.dFloor.replaceChildren(...rows);
}

const BBB_STATE = { waiting: "Waiting for the meeting", joining: "Joining", live: "Live", error: "Error", ended: "Left (event over)" };

function bbbState(state) {
  return el("p", { class: "to-small", "data-bbb-state": state.state },
    el("span", { class: "to-dot", "data-on": state.state === "live" ? "true" : "false", "aria-hidden": "true" }),
    " ", el("strong", { text: BBB_STATE[state.state] || state.state }),
    state.detail ? el("span", { class: "t-muted", text: ` — ${state.detail}` }) : null);
}

function copyRow(label, value, valueClass) {
  const v = el("code", { class: `to-copy__value${valueClass ? " " + valueClass : ""}`, text: value });
  return el("div", { class: "to-copy-labelled" },
    el("span", { class: "to-small t-muted", text: label }),
    el("div", { class: "to-copy" }, v, el("button", {
      type: "button",
      class: "t-btn to-btn-sm",
      "aria-label": `Copy ${label}`,
      onclick: (e) => copyText(value, e.currentTarget),
    }, "Copy")));
}

async function copyText(text, button) {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch (_) { /* fall back */ }
  if (!ok) {
    const ta = el("textarea", { class: "t-sr-only", readonly: "" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
    if (button) button.focus();
  }
  if (button) {
    const old = button.dataset.label || button.textContent;
    button.dataset.label = old;
    button.textContent = ok ? "Copied" : "Select and copy";
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => { button.textContent = old; }, COPIED_MS);
  }
  announce(ok ? "Copied to the clipboard." : "Could not copy: select the text and copy it.");
  return ok;
}

async function deleteEvent() {
  const ev = findEvent(st.selectedId);
  if (!ev) return;
  const yes = await confirmDialog(`Cancel event “${ev.title}”? Listeners and interpreters will be disconnected.`, "Cancel event", "Keep event");
  if (!yes) return;
  ui.del.disabled = true;
  try {
    await api("DELETE", `api/v1/events/${enc(ev.id)}`);
    st.floorTokens.delete(ev.id);
    st.issued.delete(ev.id);
    st.events = st.events.filter((e) => e.id !== ev.id);
    showEmpty();
    announce(`Event “${ev.title}” cancelled.`);
    ui.newEvent.focus();
    refreshAll();
  } catch (err) {
    if (err.status !== 401) {
      announce(err.message);
      ui.dWhen.textContent = err.message;
    }
  } finally {
    ui.del.disabled = false;
  }
}

function confirmDialog(text, okLabel, cancelLabel) {
  const d = ui.confirm;
  if (typeof d.showModal !== "function") return Promise.resolve(window.confirm(text));
  ui.confirmText.textContent = text;
  ui.confirmOk.textContent = okLabel || "Confirm";
  ui.confirmCancel.textContent = cancelLabel || "Keep";
  const back = document.activeElement;
  return new Promise((resolve) => {
    const done = () => {
      d.removeEventListener("close", done);
      resolve(d.returnValue === "ok");
      if (back && back.focus && document.contains(back)) back.focus();
    };
    d.returnValue = "";
    d.addEventListener("close", done);
    d.showModal();
    ui.confirmCancel.focus();
  });
}

/* ---------------------------------------------------------------- QR code */

function openQr() {
  const ev = findEvent(st.selectedId);
  if (!ev) return;
  ui.qrTitle.textContent = ev.title;
  ui.qrUrl.textContent = ui.listenerUrl.textContent;
  ui.qrLarge.setAttribute("src", `e/${enc(ev.id)}/qr.svg`);
  document.body.dataset.print = "qr"; // Ctrl+P while it is open prints the sheet too
  if (typeof ui.qrDialog.showModal === "function") ui.qrDialog.showModal();
  else window.open(ui.qrLarge.src, "_blank", "noopener");
  ui.qrPrint.focus();
}

function printQr() {
  document.body.dataset.print = "qr";
  window.print();
}

/* ----------------------------------------------------------- booth links */

async function loadInterpreters(id) {
  try {
    const list = await api("GET", `api/v1/events/${enc(id)}/interpreters`);
    if (st.selectedId !== id) return;
    renderInterpreters(id, Array.isArray(list) ? list : []);
  } catch (err) {
    if (err.status === 401 || st.selectedId !== id) return;
    ui.blList.replaceChildren(el("p", { class: "to-error", text: err.message }));
  }
}

function langList(codes) {
  return (codes || []).map((c) => `${labelOf(c)} (${c})`).join(" ⇄ ");
}

function renderInterpreters(id, list) {
  if (!list.length) {
    ui.blList.replaceChildren(el("p", { class: "t-muted", text: "No booth links yet." }));
    return;
  }
  ui.blList.replaceChildren(el("ul", { class: "to-rows" }, list.map((i) => el("li", { class: "to-row", "data-id": i.id },
    el("span", { class: "to-row__main" },
      el("span", { class: "to-row__name", text: i.name }),
      el("span", { class: "to-small t-muted", text: (i.languages || []).length === 2 ? `A/B booth · ${langList(i.languages)}` : langList(i.languages) }),
      el("span", { class: "to-small to-consent", "data-consent": String(Boolean(i.recording_consent)),
        text: i.recording_consent ? "Agreed to be recorded" : "No recording consent: silence in recordings while on air" })),
    el("button", {
      type: "button",
      class: "t-btn t-btn--danger to-btn-sm",
      "aria-label": `Revoke the booth link of ${i.name}`,
      onclick: () => revokeInterpreter(id, i),
    }, "Revoke")))));
}

function renderIssued(id) {
  const issued = st.issued.get(id) || [];
  ui.blIssued.replaceChildren(...issued.map((i) => {
    const link = el("a", { class: "to-copy__value booth-url", href: i.booth_url, target: "_blank", rel: "noopener noreferrer", text: i.booth_url });
    return el("div", { class: "to-once", "data-id": i.id },
      el("p", { class: "to-once__title", text: `Booth link for ${i.name} (${(i.languages || []).join(" / ")}) — shown only once` }),
      el("p", { class: "to-small", text: "Copy it now and send it to the interpreter: it is their personal link and will not be shown again." }),
      el("div", { class: "to-copy" }, link, el("button", {
        type: "button",
        class: "t-btn to-btn-sm",
        "aria-label": `Copy the booth link for ${i.name}`,
        onclick: (e) => copyText(i.booth_url, e.currentTarget),
      }, "Copy")));
  }));
}

function renderPicks(ev) {
  const codes = [ev.floor_language].concat(ev.languages || []).filter(Boolean);
  ui.blPicks.replaceChildren(...codes.map((c) => el("button", {
    type: "button",
    class: "to-pick",
    title: `Add ${labelOf(c)}`,
    "aria-label": `Add ${labelOf(c)} to the booth languages`,
    onclick: () => {
      const have = ui.blLanguages.value.split(/[\s,;]+/).filter(Boolean);
      if (!have.includes(c)) have.push(c);
      ui.blLanguages.value = have.slice(-2).join(", ");
      ui.blLanguages.focus();
    },
  }, el("span", { class: "t-code", text: c }), " ", labelOf(c))));
}

async function issueBoothLink(eventId, name, languages, recordingConsent) {
  const res = await api("POST", `api/v1/events/${enc(eventId)}/interpreters`,
    { name, languages, recording_consent: Boolean(recordingConsent) });
  if (res && res.booth_url) {
    const list = st.issued.get(eventId) || [];
    list.unshift({ id: res.id, name: res.name, languages: res.languages, booth_url: res.booth_url });
    st.issued.set(eventId, list);
  }
  if (st.selectedId === eventId && st.view === "detail") {
    renderIssued(eventId);
    loadInterpreters(eventId);
  }
  return res;
}

async function onIssue(e) {
  e.preventDefault();
  const id = st.selectedId;
  ui.blError.textContent = "";
  const name = ui.blName.value.trim();
  const items = ui.blLanguages.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
  const languages = items.map((s) => resolveLanguage(s) || s);
  if (!name) {
    ui.blError.textContent = "Enter the interpreter's name.";
    ui.blName.focus();
    return;
  }
  if (languages.length < 1 || languages.length > 2) {
    ui.blError.textContent = "Give one language of the event, or two for an A/B booth (for example: fr, de).";
    ui.blLanguages.focus();
    return;
  }
  ui.blIssue.disabled = true;
  try {
    const res = await issueBoothLink(id, name, languages, ui.blConsent.checked);
    ui.blName.value = "";
    ui.blLanguages.value = "";
    ui.blConsent.checked = false;
    announce(`Booth link issued for ${res.name || name}. Copy it now: it is shown only once.`);
    const copy = ui.blIssued.querySelector(".to-once button");
    if (copy) copy.focus();
  } catch (err) {
    if (err.status !== 401) ui.blError.textContent = err.message;
  } finally {
    ui.blIssue.disabled = false;
  }
}

async function revokeInterpreter(eventId, i) {
  const yes = await confirmDialog(`Revoke the booth link of ${i.name}? They are disconnected and the link stops working.`, "Revoke", "Keep");
  if (!yes) return;
  try {
    await api("DELETE", `api/v1/events/${enc(eventId)}/interpreters/${enc(i.id)}`);
    const issued = (st.issued.get(eventId) || []).filter((x) => x.id !== i.id);
    st.issued.set(eventId, issued);
    if (st.selectedId === eventId) renderIssued(eventId);
    announce(`Booth link of ${i.name} revoked.`);
    await loadInterpreters(eventId);
    ui.blName.focus();
  } catch (err) {
    if (err.status !== 401) ui.blError.textContent = err.message;
  }
}

/* ------------------------------------------------------------- live view */

function startLive(id) {
  stopLive();
  st.live = { id, timer: 0, seen: new Set(), first: true, data: null };
  ui.live.replaceChildren(el("p", { class: "t-muted", text: "Loading…" }));
  ui.liveUpdated.textContent = "";
  ui.liveError.textContent = "";
  pollLive(st.live);
}

function stopLive() {
  if (st.live) clearTimeout(st.live.timer);
  st.live = null;
}

async function pollLive(L) {
  if (st.live !== L) return;
  try {
    const data = await api("GET", `api/v1/events/${enc(L.id)}/live`);
    if (st.live !== L) return;
    L.data = data;
    ui.liveError.textContent = "";
    renderLive(data);
    noteSlowDowns(L, (data && data.slow_downs) || []);
    ui.liveUpdated.textContent = `Updated ${fmtTimeSec.format(new Date())}`;
  } catch (err) {
    if (st.live !== L || err.status === 401) return;
    ui.liveError.textContent = err.message;
    if (!L.data) ui.live.replaceChildren();
  } finally {
    if (st.live === L) L.timer = setTimeout(() => pollLive(L), LIVE_MS);
  }
}

function renderLive(data) {
  data = data || {};
  const floorOn = !!(data.floor && data.floor.connected);
  const slow = data.slow_downs || [];
  const stats = el("div", { class: "to-stats" },
    el("div", { class: "to-stat", "data-state": floorOn ? "on" : "off" },
      el("span", { class: "to-stat__label", text: "Floor" }),
      el("span", { class: "to-stat__value to-stat__value--text" },
        el("span", { class: "to-dot", "data-on": floorOn ? "true" : "false", "aria-hidden": "true" }),
        data.floor && data.floor.bbb
          ? `BBB: ${BBB_STATE[data.floor.bbb.state] || data.floor.bbb.state}`
          : floorOn ? "Connected" : "Not connected")),
    data.floor && data.floor.bbb && data.floor.bbb.detail
      ? el("p", { class: "t-muted to-small to-span", text: data.floor.bbb.detail }) : null,
    el("div", { class: "to-stat" },
      el("span", { class: "to-stat__label", text: "Listeners" }),
      el("span", { class: "to-stat__value", text: nf.format(data.listeners || 0) })),
    el("div", { class: "to-stat" },
      el("span", { class: "to-stat__label", text: "Handovers" }),
      el("span", { class: "to-stat__value", text: nf.format(data.handovers || 0) })),
    el("div", { class: "to-stat", "data-state": slow.length ? "warn" : null, "data-fresh": st.live && st.live.freshUntil > Date.now() ? "true" : null },
      el("span", { class: "to-stat__label", text: "Slow-downs" }),
      el("span", { class: "to-stat__value", text: nf.format(slow.length) })));

  const channels = data.channels || [];
  const table = el("table", { class: "to-table" },
    el("caption", { class: "t-sr-only", text: "Channels" }),
    el("thead", null, el("tr", null,
      el("th", { scope: "col", text: "Channel" }),
      el("th", { scope: "col", class: "to-num", text: "Listeners" }),
      el("th", { scope: "col", text: "On air" }))),
    el("tbody", null, channels.length ? channels.map((c) => {
      const air = c.on_air;
      return el("tr", { "data-language": c.language, "data-on-air": air ? "true" : "false" },
        el("td", null,
          el("span", { class: "to-cell-main", text: c.label || labelOf(c.language) }), " ",
          el("span", { class: "t-code to-dim", text: c.language }),
          c.kind === "floor" ? el("span", { class: "t-tag to-tag-gap", text: "floor" }) : null),
        el("td", { class: "to-num to-big", text: nf.format(c.listeners || 0) }),
        el("td", null, c.kind === "floor"
          ? el("span", { class: "t-muted", text: floorOn ? "original speech" : "—" })
          : air
            ? el("span", { class: "to-onair" },
              el("span", { class: "to-onair__lamp", "aria-hidden": "true" }),
              el("span", { text: air.name }),
              air.muted ? el("span", { class: "to-muted-tag", text: "muted" }) : null)
            : el("span", { class: "t-muted", text: "nobody (floor passes through)" })));
    }) : el("tr", null, el("td", { colspan: "3", class: "t-muted", text: "No channels." }))));

  const parts = [stats, el("div", { class: "to-table-wrap" }, table)];
  if (slow.length) {
    const recent = slow.slice().sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, 5);
    parts.push(el("div", { class: "to-slowlog" },
      el("h4", { class: "to-small to-slowlog__title", text: "Recent slow-down requests" }),
      el("ul", null, recent.map((s) => el("li", null,
        el("time", { datetime: s.at, text: fmtTimeSec.format(new Date(s.at)) }), " ", s.name)))));
  }
  ui.live.replaceChildren(...parts);
}

function noteSlowDowns(L, list) {
  const fresh = [];
  const now = Date.now();
  for (const s of list) {
    const key = `${s.name}|${s.at}`;
    if (L.seen.has(key)) continue;
    L.seen.add(key);
    if (!L.first || now - Date.parse(s.at) < SLOW_RECENT_MS) fresh.push(s);
  }
  L.first = false;
  if (!fresh.length) return;
  fresh.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const last = fresh[fresh.length - 1];
  const more = fresh.length > 1 ? ` (${fresh.length} new requests)` : "";
  ui.slowAlertText.textContent = `${last.name} asked the speaker to slow down at ${fmtTimeSec.format(new Date(last.at))}${more}.`;
  ui.slowAlert.hidden = false;
  L.freshUntil = Date.now() + 3000;
  document.title = "⚠ Slow down · Tolk · Organiser";
  // re-trigger the attention animation
  ui.slowAlert.classList.remove("to-alert--flash");
  void ui.slowAlert.offsetWidth;
  ui.slowAlert.classList.add("to-alert--flash");
}

/* -------------------------------------------------------------- recording */

// Bytes in human units: 980 B, 1.2 MB, 3.4 GB.
function fmtBytes(n) {
  n = Number(n) || 0;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? nf.format(n) : nf1.format(n)} ${units[i]}`;
}

// A duration in ms as m:ss, or h:mm:ss from an hour on.
function fmtDuration(ms) {
  const s = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

const REC_STATE = { recording: "Recording", done: "Done", interrupted: "Interrupted", failed: "Failed" };

function recPath(id, rest) {
  return `api/v1/events/${enc(id)}/recording${rest || ""}`;
}

function startRecordingView(id) {
  stopRecordingView();
  st.rec = { id, timer: 0, status: null, files: null, key: null, busy: false, polling: false };
  ui.recFiles.replaceChildren(el("p", { class: "t-muted", text: "Loading…" }));
  ui.recError.textContent = "";
  ui.recUpdated.textContent = "";
  ui.recStateText.textContent = "Loading…";
  ui.recStateExtra.textContent = "";
  ui.recProblem.hidden = true;
  ui.recZip.hidden = true;
  ui.recDeleteAll.hidden = true;
  ui.recAll.checked = true;
  renderRecChoice(findEvent(id));
  pollRecording(st.rec);
}

function stopRecordingView() {
  if (st.rec) clearTimeout(st.rec.timer);
  st.rec = null;
}

// Polled while the section is on screen and the tab visible; coming back polls at once.
function recordingVisible() {
  return document.visibilityState === "visible" && st.recInView;
}

async function pollRecording(R) {
  if (st.rec !== R || R.polling) return;
  clearTimeout(R.timer);
  R.polling = true;
  try {
    if (recordingVisible() || !R.status) await loadRecording(R);
  } catch (err) {
    if (st.rec === R && err.status !== 401) ui.recError.textContent = err.message;
  } finally {
    R.polling = false;
    if (st.rec === R) R.timer = setTimeout(() => pollRecording(R), RECORDING_MS);
  }
}

async function loadRecording(R) {
  const [status, list] = await Promise.all([
    api("GET", recPath(R.id)),
    api("GET", recPath(R.id, "s")),
  ]);
  const files = (list && list.recordings) || [];
  // Players and links fetch with the download cookie: get it before showing them.
  if (files.length) await recordingAccess(R.id);
  if (st.rec !== R) return;
  R.status = status;
  R.files = files;
  renderRecStatus(status);
  renderRecFiles(R);
  ui.recUpdated.textContent = `Updated ${fmtTimeSec.format(new Date())}`;
}

// The download cookie (an hour): asked again when older than ACCESS_RENEW_MS.
async function recordingAccess(id) {
  const at = st.recAccess.get(id);
  if (at && Date.now() - at < ACCESS_RENEW_MS) return;
  await api("POST", recPath(id, "s/access"));
  st.recAccess.set(id, Date.now());
}

function renderRecChoice(ev) {
  const codes = ev ? [ev.floor_language].concat(ev.languages || []).filter(Boolean) : [];
  const chosen = new Set([...ui.recLangs.querySelectorAll("input:checked")].map((i) => i.value));
  ui.recLangs.replaceChildren(...codes.map((c) => el("label", { class: "to-pick to-check" },
    el("input", { type: "checkbox", value: c, checked: chosen.has(c), onchange: () => { ui.recSome.checked = true; } }),
    el("span", { class: "t-code", text: c }), " ", labelOf(c))));
}

function renderRecStatus(s) {
  s = s || {};
  const recording = Boolean(s.recording);
  ui.recording.dataset.recording = String(recording);
  ui.recState.dataset.state = recording ? "recording" : s.on ? "waiting" : "off";
  const which = s.channels === "all" ? "all channels"
    : Array.isArray(s.channels) && s.channels.length ? s.channels.map((c) => c.toUpperCase()).join(", ") : "";
  if (recording) {
    ui.recStateText.textContent = `Recording ${which}`.trim();
    const since = s.started_at ? `since ${fmtTimeSec.format(new Date(s.started_at))} (${fmtDuration(Date.now() - Date.parse(s.started_at))})` : "";
    ui.recStateExtra.textContent = [s.part != null ? `part ${s.part}` : "", since].filter(Boolean).join(" · ");
  } else if (s.on) {
    ui.recStateText.textContent = "Switched on: waiting for the event";
    ui.recStateExtra.textContent = `Will record ${which || "all channels"} from when the event is live`;
  } else {
    ui.recStateText.textContent = "Not recording";
    ui.recStateExtra.textContent = "";
  }
  if (s.free_bytes != null) {
    ui.recStateExtra.textContent = [ui.recStateExtra.textContent, `${fmtBytes(s.free_bytes)} free on disk`].filter(Boolean).join(" · ");
  }
  ui.recProblem.hidden = !s.problem;
  ui.recProblem.textContent = s.problem ? `Recording stopped by itself: ${sentence(s.problem)}` : "";
  ui.recToggle.textContent = s.on ? "Stop recording" : "Start recording";
  ui.recToggle.setAttribute("aria-pressed", String(Boolean(s.on)));
  ui.recToggle.classList.toggle("t-btn--danger", Boolean(s.on));
  ui.recToggle.classList.toggle("t-btn--primary", !s.on);
  ui.recChoice.disabled = Boolean(s.on);
  ui.recChoice.hidden = Boolean(s.on);
}

// Who was on air in a file, and the stretches without consent (silence in the file).
function onAirText(stretches) {
  if (!stretches || !stretches.length) return el("span", { class: "t-muted", text: "nobody" });
  return el("ul", { class: "to-rec__air" }, stretches.map((o) => el("li", { "data-consent": String(Boolean(o.consent)) },
    el("span", { class: "to-cell-main", text: o.name }), " ",
    el("span", { class: "to-small t-muted", text: `${fmtDuration(o.from_ms)}–${o.to_ms == null ? "now" : fmtDuration(o.to_ms)}` }),
    o.consent ? null : [" ", el("span", { class: "to-rec__nocons", text: "not recorded: no consent" })])));
}

function renderRecFiles(R) {
  const files = R.files || [];
  const ev = findEvent(R.id);
  ui.recZip.hidden = !files.length;
  ui.recZip.href = recPath(R.id, "s/all.zip");
  ui.recZip.setAttribute("download", `tolk-recordings-${slug(ev && ev.title)}.zip`);
  ui.recDeleteAll.hidden = !files.some((f) => f.state !== "recording");
  const key = JSON.stringify(files);
  if (key === R.key) return;
  R.key = key;
  if (!files.length) {
    ui.recFiles.replaceChildren(el("p", { class: "t-muted", text: "No recordings yet." }));
    return;
  }
  // Keep the <audio> elements of files already shown: a poll must not stop playback.
  const players = new Map([...ui.recFiles.querySelectorAll("audio[data-rid]")].map((a) => [a.dataset.rid, a]));
  const parts = new Map();
  for (const f of files) {
    if (!parts.has(f.part)) parts.set(f.part, []);
    parts.get(f.part).push(f);
  }
  const order = ev ? [ev.floor_language].concat(ev.languages || []) : [];
  const rank = (f) => (f.channel === "floor" ? -1 : order.indexOf(f.language) >>> 0);
  const sections = [...parts.entries()].sort((a, b) => b[0] - a[0]).map(([part, list]) => {
    list.sort((a, b) => rank(a) - rank(b) || a.language.localeCompare(b.language));
    const started = list[0].started_at;
    return el("div", { class: "to-rec__part", "data-part": part },
      el("h5", { class: "to-rec__part-title" }, `Part ${part}`,
        el("span", { class: "to-small t-muted", text: ` · started ${day(new Date(started))}, ${fmtTimeSec.format(new Date(started))}` })),
      el("div", { class: "to-table-wrap" }, el("table", { class: "to-table to-rec__table" },
        el("caption", { class: "t-sr-only", text: `Files of part ${part}` }),
        el("thead", null, el("tr", null,
          ["Channel", "Duration", "Size", "State", "On air", "Listen"].map((h) => el("th", { scope: "col", text: h })),
          el("th", { scope: "col" }, el("span", { class: "t-sr-only", text: "Actions" })))),
        el("tbody", null, list.map((f) => recRow(R.id, f, players))))));
  });
  ui.recFiles.replaceChildren(...sections);
}

function recRow(id, f, players) {
  const url = recPath(id, `s/${enc(f.id)}`);
  const name = `${labelOf(f.language)} (${f.language})`;
  let player = players.get(f.id);
  if (!player || f.state === "recording") {
    player = f.state === "recording"
      ? el("span", { class: "to-small t-muted", text: "playable once this part ends" })
      : el("audio", { controls: true, preload: "metadata", src: url, "data-rid": f.id, "aria-label": `Play ${name}, part ${f.part}` });
  }
  return el("tr", { "data-rid": f.id, "data-state": f.state, "data-language": f.language },
    el("td", null,
      el("span", { class: "to-cell-main", text: labelOf(f.language) }), " ",
      el("span", { class: "t-code to-dim", text: f.language }), " ",
      el("span", { class: "t-tag to-tag-gap", text: f.channel === "floor" ? "floor" : "interpretation" })),
    el("td", { class: "to-num", text: fmtDuration(f.duration_ms) }),
    el("td", { class: "to-num", text: fmtBytes(f.size) }),
    el("td", null,
      el("span", { class: "to-badge to-rec__badge", "data-state": f.state, text: REC_STATE[f.state] || f.state }),
      f.problem ? el("span", { class: "to-small to-block to-error", text: sentence(f.problem) }) : null),
    el("td", null, onAirText(f.on_air)),
    el("td", null, player),
    el("td", null, el("div", { class: "to-rec__actions" },
      el("a", { class: "t-btn to-btn-sm", href: url, download: `${slug(f.language)}-part-${f.part}.opus`, "aria-label": `Download ${name}, part ${f.part}` }, "Download"),
      f.state === "recording" ? null : el("button", {
        type: "button",
        class: "t-btn t-btn--danger to-btn-sm",
        "aria-label": `Delete ${name}, part ${f.part}`,
        onclick: () => deleteRecording(id, f, name),
      }, "Delete"))));
}

async function toggleRecording() {
  const R = st.rec;
  if (!R || R.busy) return;
  const on = !(R.status && R.status.on);
  const body = { on };
  if (on && ui.recSome.checked) {
    const chosen = [...ui.recLangs.querySelectorAll("input:checked")].map((i) => i.value);
    if (!chosen.length) {
      ui.recError.textContent = "Choose at least one channel to record, or all channels.";
      return;
    }
    body.channels = chosen;
  } else if (on) body.channels = "all";
  ui.recError.textContent = "";
  R.busy = true;
  ui.recToggle.disabled = true;
  try {
    const status = await api("POST", recPath(R.id), body);
    if (st.rec !== R) return;
    R.status = status;
    renderRecStatus(status);
    announce(on ? "Recording started." : "Recording stopped.");
    await loadRecording(R);
  } catch (err) {
    if (st.rec === R && err.status !== 401) {
      ui.recError.textContent = `${on ? "Recording did not start" : "Recording did not stop"}: ${err.message}`;
    }
  } finally {
    R.busy = false;
    ui.recToggle.disabled = false;
  }
}

async function deleteRecording(id, f, name) {
  const yes = await confirmDialog(`Delete the recording of ${name}, part ${f.part}? It cannot be undone.`, "Delete", "Keep");
  if (!yes) return;
  ui.recError.textContent = "";
  try {
    await api("DELETE", recPath(id, `s/${enc(f.id)}`));
    announce(`Recording of ${name} deleted.`);
  } catch (err) {
    if (err.status !== 401) ui.recError.textContent = err.message;
  }
  if (st.rec && st.rec.id === id) await loadRecording(st.rec).catch(() => {});
}

async function deleteAllRecordings() {
  const R = st.rec;
  if (!R) return;
  const yes = await confirmDialog("Delete all recordings of this event? Files being written now are kept. It cannot be undone.", "Delete all", "Keep");
  if (!yes) return;
  ui.recError.textContent = "";
  try {
    await api("DELETE", recPath(R.id, "s"));
    announce("Recordings deleted.");
  } catch (err) {
    if (err.status !== 401) ui.recError.textContent = err.message;
  }
  if (st.rec === R) await loadRecording(R).catch(() => {});
}

/* ------------------------------------------------------------------ usage */

async function loadUsage(id) {
  ui.usageError.textContent = "";
  ui.usageRefresh.disabled = true;
  try {
    const u = await api("GET", `api/v1/events/${enc(id)}/usage`);
    if (st.selectedId !== id) return;
    st.usage = u;
    renderUsage(u);
    ui.usageRefresh.textContent = "Refresh summary";
  } catch (err) {
    if (err.status === 401 || st.selectedId !== id) return;
    ui.usageError.textContent = err.message;
  } finally {
    ui.usageRefresh.disabled = false;
  }
}

function renderUsage(u) {
  u = u || {};
  const channels = u.channels || [];
  const interpreters = u.interpreters || [];
  const totalMinutes = channels.reduce((s, c) => s + (Number(c.listener_minutes) || 0), 0);
  const peak = channels.reduce((s, c) => Math.max(s, Number(c.peak_listeners) || 0), 0);
  const stats = el("div", { class: "to-stats" },
    el("div", { class: "to-stat" }, el("span", { class: "to-stat__label", text: "Listener minutes" }), el("span", { class: "to-stat__value", text: nf1.format(totalMinutes) })),
    el("div", { class: "to-stat" }, el("span", { class: "to-stat__label", text: "Highest channel peak" }), el("span", { class: "to-stat__value", text: nf.format(peak) })),
    el("div", { class: "to-stat" }, el("span", { class: "to-stat__label", text: "Handovers" }), el("span", { class: "to-stat__value", text: nf.format(u.handovers || 0) })),
    el("div", { class: "to-stat" }, el("span", { class: "to-stat__label", text: "Slow-downs" }), el("span", { class: "to-stat__value", text: nf.format(u.slow_downs || 0) })));
  const chTable = el("table", { class: "to-table" },
    el("caption", { text: "Channels" }),
    el("thead", null, el("tr", null,
      el("th", { scope: "col", text: "Language" }),
      el("th", { scope: "col", class: "to-num", text: "Peak listeners" }),
      el("th", { scope: "col", class: "to-num", text: "Listener minutes" }))),
    el("tbody", null, channels.length ? channels.map((c) => el("tr", null,
      el("td", null, labelOf(c.language), " ", el("span", { class: "t-code to-dim", text: c.language })),
      el("td", { class: "to-num", text: nf.format(c.peak_listeners || 0) }),
      el("td", { class: "to-num", text: nf1.format(c.listener_minutes || 0) })))
      : el("tr", null, el("td", { colspan: "3", class: "t-muted", text: "No listening recorded." }))));
  const inTable = el("table", { class: "to-table" },
    el("caption", { text: "Interpreters" }),
    el("thead", null, el("tr", null,
      el("th", { scope: "col", text: "Name" }),
      el("th", { scope: "col", text: "Language" }),
      el("th", { scope: "col", class: "to-num", text: "On-air minutes" }))),
    el("tbody", null, interpreters.length ? interpreters.map((i) => el("tr", null,
      el("td", { text: i.name }),
      el("td", null, labelOf(i.language), " ", el("span", { class: "t-code to-dim", text: i.language || "" })),
      el("td", { class: "to-num", text: nf1.format(i.on_air_minutes || 0) })))
      : el("tr", null, el("td", { colspan: "3", class: "t-muted", text: "Nobody on air yet." }))));
  ui.usageBody.replaceChildren(stats, el("div", { class: "to-cols to-cols--even" },
    el("div", { class: "to-table-wrap" }, chTable), el("div", { class: "to-table-wrap" }, inTable)));
}

function slug(s) {
  return String(s || "event").normalize("NFD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^A-Za-z0-9]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase().slice(0, 40) || "event";
}

async function download(format, button) {
  const ev = findEvent(st.selectedId);
  if (!ev) return;
  ui.usageError.textContent = "";
  button.disabled = true;
  try {
    const path = `api/v1/events/${enc(ev.id)}/usage${format === "csv" ? "?format=csv" : ""}`;
    const res = await api("GET", path, undefined, { raw: true, accept: format === "csv" ? "text/csv" : "application/json" });
    const blob = await res.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `tolk-usage-${slug(ev.title)}-${ev.starts_at.slice(0, 10)}.${format}` });
    a.hidden = true;
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    announce(`Usage report downloaded as ${format.toUpperCase()}.`);
  } catch (err) {
    if (err.status !== 401) ui.usageError.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

/* -------------------------------------------------------------- calendar */

async function loadCalendar() {
  const seq = ++st.calSeq;
  const from = st.calStart;
  const to = addDays(from, CAL_DAYS);
  ui.calRange.textContent = `${fmtShort.format(from)} – ${fmtShort.format(addDays(to, -1))} · loading…`;
  try {
    const data = await api("GET", `api/v1/capacity?from=${enc(from.toISOString())}&to=${enc(to.toISOString())}`);
    if (seq !== st.calSeq) return;
    st.calData = { from, to, data };
    renderCalendar();
  } catch (err) {
    if (seq !== st.calSeq || err.status === 401) return;
    st.calData = null;
    ui.calRange.textContent = `${fmtShort.format(from)} – ${fmtShort.format(addDays(to, -1))}`;
    ui.cal.replaceChildren(el("p", { class: "to-error", text: err.message }));
  }
}

function level(share) {
  return share > 0.85 ? "high" : share >= 0.5 ? "mid" : "low";
}

function renderCalendar() {
  const c = st.calData;
  if (!c) return;
  const key = JSON.stringify([c.from, c.data, st.selectedId,
    st.events.map((e) => [e.id, e.title, e.starts_at, e.ends_at, e.expected_listeners])]);
  if (key === st.calKey && ui.cal.contains(document.activeElement)) return;
  st.calKey = key;
  hideTip();
  const cap = (c.data && c.data.capacity) || { listeners: 0, channels: 0 };
  const segments = (c.data && c.data.segments) || [];
  ui.calRange.textContent = `${fmtShort.format(c.from)} – ${fmtShort.format(addDays(c.to, -1))} · this server takes ${nf.format(cap.listeners)} listeners and ${nf.format(cap.channels)} channel units at once`;
  const now = new Date();

  const axis = el("div", { class: "to-cal__row to-cal__row--axis", "aria-hidden": "true" },
    el("span", { class: "to-cal__day" }),
    el("span", { class: "to-cal__axis" }, [0, 3, 6, 9, 12, 15, 18, 21, 24].map((h) =>
      el("span", { class: "to-cal__tick", "data-major": h % 6 === 0 ? "true" : "false", style: `--at:${h / 24}`, text: h % 6 === 0 ? `${pad(h)}:00` : "" }))));

  const rows = [axis];
  for (let i = 0; i < CAL_DAYS; i++) {
    const d0 = addDays(c.from, i);
    const d1 = addDays(c.from, i + 1);
    const a = d0.getTime();
    const b = d1.getTime();
    const span = b - a;
    const pos = (t) => ((Math.min(Math.max(t, a), b) - a) / span) * 100;

    const usage = el("div", { class: "to-cal__usage" });
    for (const s of segments) {
      const sf = Date.parse(s.from);
      const stt = Date.parse(s.to);
      if (stt <= a || sf >= b) continue;
      const usedL = cap.listeners ? (cap.listeners - s.free_listeners) / cap.listeners : 0;
      const usedC = cap.channels ? (cap.channels - s.free_channels) / cap.channels : 0;
      if (usedL <= 0 && usedC <= 0 && !s.events) continue;
      const left = pos(sf);
      const width = pos(stt) - left;
      const share = Math.max(usedL, usedC);
      const text = `${fmtRange(s.from, s.to)}: ${nf.format(Math.max(0, s.free_listeners))} of ${nf.format(cap.listeners)} listeners free, ` +
        `${nf.format(Math.max(0, s.free_channels))} of ${nf.format(cap.channels)} channel units free, ${s.events} event${s.events === 1 ? "" : "s"}`;
      const seg = el("div", {
        class: "to-cal__seg",
        tabindex: "0",
        role: "img",
        "aria-label": text,
        "data-level": level(share),
        style: `left:${left}%;width:${width}%`,
      }, el("span", { class: "to-cal__fill", style: `height:${Math.min(100, Math.max(4, usedL * 100))}%` }));
      seg._tip = [fmtRange(s.from, s.to),
        `${nf.format(Math.max(0, s.free_listeners))} of ${nf.format(cap.listeners)} listeners free (${Math.round(usedL * 100)} % booked)`,
        `${nf.format(Math.max(0, s.free_channels))} of ${nf.format(cap.channels)} channel units free`,
        `${s.events} event${s.events === 1 ? "" : "s"}`];
      usage.append(seg);
    }
    if (now >= d0 && now < d1) usage.append(el("span", { class: "to-cal__now", style: `left:${pos(now.getTime())}%`, title: "now" }));

    // events of the list, in lanes so overlapping ones do not cover each other
    const dayEvents = st.events
      .filter((ev) => Date.parse(ev.ends_at) > a && Date.parse(ev.starts_at) < b)
      .sort((x, y) => Date.parse(x.starts_at) - Date.parse(y.starts_at));
    const laneEnds = [];
    const evEls = dayEvents.map((ev) => {
      const s = Date.parse(ev.starts_at);
      const e = Date.parse(ev.ends_at);
      let lane = laneEnds.findIndex((end) => end <= s);
      if (lane < 0) { lane = laneEnds.length; laneEnds.push(e); } else laneEnds[lane] = e;
      const left = pos(s);
      const status = statusOf(ev);
      return el("button", {
        type: "button",
        class: "to-cal__ev",
        "data-status": status,
        "aria-current": st.selectedId === ev.id ? "true" : null,
        style: `left:${left}%;width:${Math.max(0.6, pos(e) - left)}%;--lane:${lane}`,
        "aria-label": `${ev.title}, ${fmtRange(ev.starts_at, ev.ends_at)}, ${nf.format(ev.expected_listeners)} listeners, ${STATUS_TEXT[status]}`,
        title: `${ev.title} · ${fmtRange(ev.starts_at, ev.ends_at)}`,
        onclick: () => openDetail(ev.id, true),
      }, el("span", { class: "to-cal__ev-text", text: ev.title }));
    });
    const events = el("div", { class: "to-cal__events", style: `--lanes:${laneEnds.length}` }, evEls);

    const isToday = sameDay(d0, now);
    const weekend = d0.getDay() === 0 || d0.getDay() === 6;
    rows.push(el("div", { class: "to-cal__row", "data-today": isToday ? "true" : null, "data-weekend": weekend ? "true" : null },
      el("span", { class: "to-cal__day" },
        el("span", { class: "to-cal__dow", text: new Intl.DateTimeFormat(undefined, { weekday: "short" }).format(d0) }),
        el("span", { class: "to-cal__date", text: fmtShort.format(d0) })),
      el("div", { class: "to-cal__track" }, usage, events)));
  }
  ui.cal.replaceChildren(...rows);
}

function showTip(target) {
  if (!target || !target._tip) return hideTip();
  const [head, ...lines] = target._tip;
  ui.calTip.replaceChildren(el("strong", { text: head }), ...lines.map((l) => el("span", { text: l })));
  ui.calTip.hidden = false;
  const card = ui.calTip.offsetParent || ui.cal;
  const cr = card.getBoundingClientRect();
  const tr = target.getBoundingClientRect();
  const tipW = ui.calTip.offsetWidth;
  let x = tr.left - cr.left + tr.width / 2 - tipW / 2;
  x = Math.max(8, Math.min(x, cr.width - tipW - 8));
  ui.calTip.style.left = `${x}px`;
  ui.calTip.style.top = `${tr.bottom - cr.top + 6}px`;
}

function hideTip() {
  ui.calTip.hidden = true;
}

/* ------------------------------------------------------------------ wiring */

function wire() {
  ui.tzName.textContent = TZ;
  ui.tz.textContent = `Times in your time zone (${TZ}); saved in UTC.`;

  ui.signinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    signIn(ui.token.value);
  });
  ui.signOut.addEventListener("click", () => {
    signedOut("");
    showSignIn("");
    announce("Signed out.");
  });

  ui.refresh.addEventListener("click", async () => {
    await refreshAll();
    announce("Event list refreshed.");
  });
  ui.newEvent.addEventListener("click", () => openEditor("create"));
  ui.evClose.addEventListener("click", closeEditor);
  ui.cancelEdit.addEventListener("click", closeEditor);
  ui.form.addEventListener("submit", save);
  ui.form.addEventListener("input", (e) => {
    if (e.target === ui.langAdd) return;
    if (e.target === ui.title) ui.title.removeAttribute("aria-invalid");
    scheduleCapacity();
  });
  ui.form.addEventListener("change", (e) => {
    if (e.target === ui.langAdd) return;
    scheduleCapacity();
  });
  ui.floorKind.addEventListener("change", () => {
    ui.meetingField.hidden = ui.floorKind.value !== "bbb";
    if (!ui.meetingField.hidden) ui.meetingId.focus();
  });
  ui.floorLanguage.addEventListener("change", () => {
    const f = ui.floorLanguage.value;
    if (st.editor.languages.includes(f)) {
      removeLanguage(f, false);
      ui.langNote.textContent = `${labelOf(f)} is now the floor language, so it is no longer an interpretation language.`;
    }
  });
  ui.langAdd.addEventListener("input", () => {
    st.editor.active = -1;
    ui.langNote.textContent = "";
    openSuggestions();
  });
  ui.langAdd.addEventListener("keydown", onLanguageKey);
  ui.langAdd.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== ui.langAdd) closeSuggestions();
  }, 100));

  ui.edit.addEventListener("click", () => {
    const ev = findEvent(st.selectedId);
    if (ev) openEditor("edit", ev);
  });
  ui.del.addEventListener("click", deleteEvent);
  ui.tokenDone.addEventListener("click", () => {
    st.floorTokens.delete(st.selectedId);
    ui.tokenBox.hidden = true;
    ui.floorToken.textContent = "";
    announce("Floor token hidden. It cannot be shown again.");
    ui.dTitle.focus();
  });
  ui.slowAlertDismiss.addEventListener("click", () => {
    ui.slowAlert.hidden = true;
    document.title = TITLE;
    ui.dTitle.focus();
  });

  // static copy buttons: data-copy="#id" copies that element's text
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest("button[data-copy]");
    if (!b) return;
    const src = document.querySelector(b.dataset.copy);
    if (src) copyText(src.textContent, b);
  });

  ui.qrOpen.addEventListener("click", openQr);
  ui.qrClose.addEventListener("click", () => ui.qrDialog.close());
  ui.qrPrint.addEventListener("click", printQr);
  ui.qrDialog.addEventListener("click", (e) => { if (e.target === ui.qrDialog) ui.qrDialog.close(); });
  ui.qrDialog.addEventListener("close", () => { delete document.body.dataset.print; ui.qrOpen.focus(); });

  ui.confirmOk.addEventListener("click", () => ui.confirm.close("ok"));
  ui.confirmCancel.addEventListener("click", () => ui.confirm.close("cancel"));

  ui.blForm.addEventListener("submit", onIssue);
  ui.recToggle.addEventListener("click", toggleRecording);
  ui.recDeleteAll.addEventListener("click", deleteAllRecordings);
  if (typeof IntersectionObserver === "function") {
    new IntersectionObserver((entries) => {
      const was = st.recInView;
      st.recInView = entries[entries.length - 1].isIntersecting;
      if (st.recInView && !was && st.rec) pollRecording(st.rec);
    }).observe(ui.recording);
  } else st.recInView = true;
  ui.usageRefresh.addEventListener("click", () => st.selectedId && loadUsage(st.selectedId));
  ui.usageJson.addEventListener("click", (e) => download("json", e.currentTarget));
  ui.usageCsv.addEventListener("click", (e) => download("csv", e.currentTarget));

  ui.calPrev.addEventListener("click", () => { st.calStart = addDays(st.calStart, -7); loadCalendar(); });
  ui.calNext.addEventListener("click", () => { st.calStart = addDays(st.calStart, 7); loadCalendar(); });
  ui.calToday.addEventListener("click", () => { st.calStart = startOfDay(new Date()); loadCalendar(); });
  const focusedSeg = () => document.activeElement && document.activeElement.classList.contains("to-cal__seg");
  ui.cal.addEventListener("mouseover", (e) => {
    const seg = e.target.closest(".to-cal__seg");
    if (seg) showTip(seg);
    else if (!focusedSeg()) hideTip();
  });
  ui.cal.addEventListener("mouseleave", () => { if (focusedSeg()) showTip(document.activeElement); else hideTip(); });
  ui.cal.addEventListener("focusin", (e) => {
    if (e.target.classList.contains("to-cal__seg")) showTip(e.target);
    else hideTip();
  });
  ui.cal.addEventListener("focusout", hideTip);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideTip(); });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && st.signedIn) {
      refreshAll();
      if (st.rec) pollRecording(st.rec);
    }
  });
}

function init() {
  wire();
  fillFloorSelect();
  renderChips();
  let saved = null;
  try { saved = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* ignore */ }
  if (saved) signIn(saved);
  else showSignIn("");
}

/*
 * Test hook for the automated browser test (and handy in the console).
 *   signedIn            true once a token was accepted
 *   events              the last event list from GET api/v1/events
 *   lastCapacityAnswer  {fits: true} | {fits: false, detail} | null (none
 *                       yet, incomplete form, or a check under way)
 *   selectedId, view    the event open in the detail, and "empty" | "editor" | "detail"
 *   live, usage         the last live view and usage report of that event
 *   recording           {status, files} of that event's recording section (null: not loaded)
 *   createEvent(body), issueBoothLink(eventId, name, languages, recordingConsent)
 *                       → Promise of the server's JSON (rejects with .status, .detail)
 *   signIn(token) → Promise<bool>, signOut(), refresh(), openEvent(id)
 */
window.tolkOrganiser = {
  get signedIn() { return st.signedIn; },
  get events() { return st.events.map((e) => Object.assign({}, e)); },
  get lastCapacityAnswer() { return st.lastCapacityAnswer ? Object.assign({}, st.lastCapacityAnswer) : null; },
  get selectedId() { return st.selectedId; },
  get view() { return st.view; },
  get live() { return st.live && st.live.data; },
  get usage() { return st.usage; },
  get recording() { return st.rec && st.rec.status ? { status: st.rec.status, files: st.rec.files } : null; },
  get languages() { return st.languages.slice(); },
  async createEvent(body) {
    const ev = await api("POST", "api/v1/events", body);
    rememberCreated(ev);
    await refreshAll();
    return ev;
  },
  issueBoothLink,
  signIn,
  signOut() {
    signedOut("");
    showSignIn("");
  },
  refresh: refreshAll,
  openEvent(id) { openDetail(id, false); },
};

init();
