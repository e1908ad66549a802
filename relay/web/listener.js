/*
 * Tolk listener page (served as listener.html at /e/{event}).
 *
 * This file owns: loading the event and its channel list (refreshed while
 * playing, with who is speaking), the language picker, the WHEP receive
 * session (start / stop / switch language on the live session / reconnect
 * with backoff), the WebAudio graph (channel + floor mix, volume gain, level
 * meter, tone measurement) and the window.tolkListener test hook.
 * Markup lives in listener.html, looks in tolk.css.
 *
 * The WHEP offer has two recvonly audio sections: the server sends the
 * chosen channel on the first and the floor (original speech) on the second.
 * The floor is mixed in under the channel by the "Original" slider.
 *
 * Every URL is resolved relative to the page, so the server may be mounted
 * behind a path prefix (https://host/prefix/e/{event}).
 */
(function () {
  "use strict";

  const VOLUME_KEY = "tolk.listener.volume";
  const DEFAULT_VOLUME = 80;
  const ORIGINAL_KEY = "tolk.listener.original";
  const DEFAULT_ORIGINAL = 0;
  const REFRESH_MS = 5000; // channel list (who is speaking) while playing
  const BACKOFF_S = [1, 2, 4, 8, 15];
  const ICE_GATHER_MAX_MS = 1000;
  const CONNECT_TIMEOUT_MS = 15000;
  const DISCONNECT_GRACE_MS = 3000;
  // After the server confirmed a channel switch, audio of the old channel is
  // still in flight and in the jitter buffer; this plus the measured playout
  // delay and one analyser window is when the new channel is surely heard.
  const SWITCH_SETTLE_MS = 200;
  const SWITCH_WAIT_MAX_MS = 5000; // measureTone waits at most this for a pending switch
  const METER_INTERVAL_MS = 50;
  const MEASURE_INTERVAL_MS = 50;
  const FFT_SIZE = 8192;
  const SILENCE_DB = -60;
  const FLOOR_DB = -200; // reported instead of -Infinity so results stay plain JSON numbers

  const $ = (id) => document.getElementById(id);
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
  const ROOT = new URL(location.pathname.endsWith("/") ? "../../" : "../", location.href);
  const eventId = readEventId();

  const st = {
    state: "idle",
    message: "",
    language: null,
    channels: [],
    firstAudioMs: null,
    postAt: null, // performance.now() when the current WHEP or switch POST was sent
    wanted: false, // the listener asked to hear audio
    session: null, // the current WHEP session, see startSession()
    backoff: 0, // index into BACKOFF_S
    retryTimer: 0,
    needsGesture: false, // AudioContext blocked by the autoplay policy
    refreshTimer: 0,
    refreshing: false, // a channel list request is under way
    channelsAt: -Infinity, // performance.now() of the newest channel list
  };

  // channel source → analyser (meter, measureTone) and → gain (volume) → speakers
  // floor source → floorGain (Original slider) → gain
  const audio = {
    ctx: null,
    gain: null,
    floorGain: null,
    source: null,
    floorSource: null,
    analyser: null,
    buf: null,
    shown: 0,
    ariaAt: 0,
  };

  /* ---------------------------------------------------------------- URLs */

  function readEventId() {
    const v = document.body.dataset.event || "";
    if (v && v !== "{{" + "EVENT_ID}}") return v;
    // Opened without the server's templating (development): use the path.
    const m = location.pathname.match(/\/e\/([^/]+)\/?$/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  const enc = encodeURIComponent;
  const channelsUrl = () => new URL(`api/v1/events/${enc(eventId)}/channels`, ROOT).href;
  const whepUrl = (language) => new URL(`whep/${enc(eventId)}/${enc(language)}`, ROOT).href;
  const switchUrl = (s) => `${s.url.replace(/\/+$/, "")}/channel`;

  /* ------------------------------------------------------------ HTTP helpers */

  async function request(url, options) {
    try {
      return await fetch(url, options);
    } catch (_) {
      const err = new Error("Cannot reach the Tolk server.");
      err.network = true;
      throw err;
    }
  }

  // Turns a non-success response (application/problem+json) into an Error.
  async function problemFrom(res) {
    let detail = "";
    try {
      const type = res.headers.get("Content-Type") || "";
      if (type.includes("json")) {
        const p = await res.json();
        detail = p.detail || p.title || "";
      } else {
        detail = (await res.text()).trim().slice(0, 300);
      }
    } catch (_) { /* keep the generic sentence */ }
    if (!detail && res.status === 503) detail = "The event is full.";
    const err = new Error(sentence(detail || `The server answered ${res.status} ${res.statusText}`.trim()));
    err.status = res.status;
    err.retryAfter = parseRetryAfter(res.headers.get("Retry-After"));
    return err;
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    const secs = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
    return Number.isFinite(secs) ? Math.max(1, Math.ceil(secs)) : null;
  }

  // Client errors will not go away by retrying; everything else might.
  function isPermanent(err) {
    return err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
  }

  function sentence(text) {
    text = String(text).trim();
    return /[.!?…]$/.test(text) ? text : text + ".";
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
    const mode = st.needsGesture ? "unlock" : st.wanted ? "stop" : "play";
    ui.play.dataset.mode = mode;
    ui.playLabel.textContent = { play: "Play", stop: "Stop", unlock: "Enable sound" }[mode];
    ui.iconPlay.toggleAttribute("hidden", mode === "stop"); // SVG: no .hidden property
    ui.iconStop.toggleAttribute("hidden", mode !== "stop");
    ui.hint.hidden = !st.needsGesture;
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
      if (!res.ok) throw await problemFrom(res);
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
      const wait = err.retryAfter || BACKOFF_S[Math.min(attempt, BACKOFF_S.length - 1)];
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
    const pick = channelFor(params.get("lang")) ||
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
    st.backoff = 0;
    ensureAudio();
    renderPlayButton();
    startRefresh();
    return startSession(st.language, false);
  }

  function stop() {
    st.wanted = false;
    st.needsGesture = false;
    clearRetry();
    stopRefresh();
    endSession();
    renderPlayButton();
    renderOriginal();
    setState("idle");
  }

  function onPlayClick() {
    if (st.needsGesture) unlockAudio();
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
    st.backoff = 0;
    const s = st.session;
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
          if (s !== st.session) return;
          if (!res.ok) throw await problemFrom(res);
          s.language = language;
        }
        applyOriginal();
        showSessionState(s);
        await settle(s);
        if (s !== st.session || s.want === s.language) return;
      }
    } catch (err) {
      if (s !== st.session) return;
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
    if (s !== st.session || s.want !== s.language) return;
    const windowMs = audio.ctx ? FFT_SIZE / audio.ctx.sampleRate * 1000 : 0;
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
    let ms = NaN;
    try {
      const stats = await s.channelTx.receiver.getStats();
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.jitterBufferEmittedCount > 0) {
          ms = r.jitterBufferDelay / r.jitterBufferEmittedCount * 1000;
        }
      });
    } catch (_) { /* the browser does not say */ }
    return Number.isFinite(ms) ? Math.min(1000, Math.max(0, ms)) : 100;
  }

  // The status line for session s, from its connection and any switch.
  function showSessionState(s) {
    if (s.graceTimer) return; // "Connection interrupted…" stands until it recovers or fails
    if (s.want !== s.language) setState("connecting", `Switching to ${labelFor(s.want)}…`);
    else if (connectionState(s.pc) === "connected") setState("listening", `Listening to ${labelFor(s.language)}.`);
    else setState("connecting", `Connecting to ${labelFor(s.language)}…`);
  }

  /* ------------------------------------------------------------ WHEP session */

  async function startSession(language, retry) {
    clearRetry();
    endSession();
    const s = {
      language, // what the server sends on the channel track
      want: language, // what the listener chose; differs while a switch is under way
      pc: null,
      url: null,
      closed: false,
      released: false,
      connectTimer: 0,
      graceTimer: 0,
      channelTx: null, // transceiver of the chosen channel (first audio section)
      floorTx: null, // transceiver of the floor (second audio section)
      floorAvailable: null, // the answer sends the floor track; null until known
      switching: null, // the running switch, see switchChannel()
      settleUntil: 0, // performance.now() from which the channel track plays s.language
      wake: null, // ends a settle wait early
    };
    st.session = s;
    st.firstAudioMs = null;
    st.postAt = null;
    renderOriginal();
    setState(retry ? "reconnecting" : "connecting",
      `${retry ? "Reconnecting" : "Connecting"} to ${labelFor(language)}…`);
    try {
      const pc = (s.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" }));
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
      pc.onconnectionstatechange = () => onConnectionState(s);
      pc.oniceconnectionstatechange = () => onConnectionState(s);

      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc, ICE_GATHER_MAX_MS);
      if (s.closed) return;

      st.postAt = performance.now();
      const res = await request(whepUrl(language), {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (res.status !== 201) throw await problemFrom(res);
      const loc = res.headers.get("Location");
      if (loc) s.url = new URL(loc, res.url).href;
      const answer = await res.text();
      if (s.closed) {
        releaseServerSession(s);
        return;
      }
      s.connectTimer = setTimeout(
        () => failSession(s, new Error("The audio connection could not be established.")),
        CONNECT_TIMEOUT_MS);
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      if (s.closed) return;
      // A server that answers the second section inactive (or rejects it)
      // sends no floor: the Original slider says so.
      const floorDir = s.floorTx.currentDirection;
      s.floorAvailable = Boolean(s.floorAvailable) || floorDir === "recvonly" || floorDir === "sendrecv";
      renderOriginal();
    } catch (err) {
      failSession(s, err);
    }
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

  function iceGatheringDone(pc, maxMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") done();
      };
      const timer = setTimeout(done, maxMs);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // connectionState, falling back to the ICE state on older browsers.
  function connectionState(pc) {
    if (pc.connectionState) return pc.connectionState;
    const ice = pc.iceConnectionState;
    return ice === "completed" ? "connected" : ice;
  }

  function onConnectionState(s) {
    if (s !== st.session) return;
    const state = connectionState(s.pc);
    if (state === "connected") {
      clearTimeout(s.connectTimer);
      clearTimeout(s.graceTimer);
      s.graceTimer = 0;
      st.backoff = 0;
      showSessionState(s);
    } else if (state === "disconnected") {
      if (s.graceTimer) return;
      setState("reconnecting", "Connection interrupted, waiting for it to recover…");
      s.graceTimer = setTimeout(() => failSession(s, new Error("The connection was lost.")), DISCONNECT_GRACE_MS);
    } else if (state === "failed") {
      failSession(s, new Error("The connection was lost."));
    }
  }

  // Ends session s after an error and decides between giving up and retrying.
  function failSession(s, err) {
    if (s !== st.session) return; // already replaced or stopped
    endSession();
    if (!st.wanted) return;
    const message = sentence(err && err.message ? err.message : "The connection failed");
    if (isPermanent(err)) {
      st.wanted = false;
      st.needsGesture = false;
      stopRefresh();
      renderPlayButton();
      setState("error", message);
      return;
    }
    const wait = err.retryAfter || nextBackoff();
    const verb = err.status === 503 || err.status === 429 ? "Retrying" : "Reconnecting";
    scheduleRetry(wait, (n) => `${message} ${verb} in ${n} s.`);
  }

  function nextBackoff() {
    const secs = BACKOFF_S[Math.min(st.backoff, BACKOFF_S.length - 1)];
    st.backoff += 1;
    return secs;
  }

  function scheduleRetry(seconds, text) {
    clearRetry();
    let left = Math.max(1, Math.ceil(seconds));
    const tick = (first) => {
      if (left <= 0) {
        st.retryTimer = 0;
        startSession(st.language, true);
        return;
      }
      setState("reconnecting", text(left), !first);
      left -= 1;
      st.retryTimer = setTimeout(() => tick(false), 1000);
    };
    tick(true);
  }

  function clearRetry() {
    clearTimeout(st.retryTimer);
    st.retryTimer = 0;
  }

  function endSession() {
    const s = st.session;
    st.session = null;
    if (!s) return;
    s.closed = true;
    clearTimeout(s.connectTimer);
    clearTimeout(s.graceTimer);
    if (s.wake) s.wake();
    if (s.pc) {
      s.pc.ontrack = s.pc.onconnectionstatechange = s.pc.oniceconnectionstatechange = null;
      try { s.pc.close(); } catch (_) { /* already closed */ }
    }
    releaseServerSession(s);
    detachChannel();
    detachFloor();
    renderOriginal();
  }

  // DELETE the WHEP resource once; errors don't matter.
  function releaseServerSession(s) {
    if (!s.url || s.released) return;
    s.released = true;
    fetch(s.url, { method: "DELETE", keepalive: true }).catch(() => {});
  }

  /* -------------------------------------------------------------- WebAudio */

  // Called on the Play click (user gesture) or by ?autoplay=1.
  function ensureAudio() {
    if (!audio.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      audio.ctx = new Ctx();
      audio.gain = audio.ctx.createGain();
      audio.gain.connect(audio.ctx.destination);
      audio.floorGain = audio.ctx.createGain();
      audio.floorGain.gain.value = 0;
      audio.floorGain.connect(audio.gain);
      applyVolume();
      applyOriginal();
      audio.ctx.addEventListener("statechange", checkAudioUnlocked);
      setInterval(meterTick, METER_INTERVAL_MS);
    }
    if (audio.ctx.state !== "running") audio.ctx.resume().then(checkAudioUnlocked, () => {});
    // Without a user gesture resume() stays pending; look again shortly.
    setTimeout(checkAudioUnlocked, 600);
  }

  function checkAudioUnlocked() {
    const blocked = Boolean(audio.ctx) && audio.ctx.state === "suspended" && st.wanted;
    if (blocked === st.needsGesture) return;
    st.needsGesture = blocked;
    renderPlayButton();
  }

  function unlockAudio() {
    if (audio.ctx) audio.ctx.resume().then(checkAudioUnlocked, () => {});
    for (const el of [ui.audio, ui.audioFloor]) {
      if (el.srcObject) el.play().catch(() => {});
    }
  }

  // Each received track → its own muted <audio> (Chromium only feeds remote
  // WebRTC audio to WebAudio when a media element plays it) and → WebAudio.
  // Each gets a MediaStream of its own: given a stream holding both tracks,
  // createMediaStreamSource() would pick one of them.
  function playMuted(el, track) {
    const stream = new MediaStream([track]);
    el.muted = true;
    el.srcObject = stream;
    el.play().catch(() => {});
    return stream;
  }

  // The channel → analyser (meter, measureTone) and → volume gain.
  function attachChannel(track) {
    detachChannel();
    ensureAudio();
    const stream = playMuted(ui.audio, track);
    audio.source = audio.ctx.createMediaStreamSource(stream);
    audio.analyser = audio.ctx.createAnalyser();
    audio.analyser.fftSize = FFT_SIZE;
    audio.analyser.smoothingTimeConstant = 0;
    audio.source.connect(audio.analyser); // before any gain: volume and the floor do not change the measurement
    audio.source.connect(audio.gain);
  }

  // The floor → floor gain (Original slider) → volume gain.
  function attachFloor(track) {
    detachFloor();
    ensureAudio();
    const stream = playMuted(ui.audioFloor, track);
    audio.floorSource = audio.ctx.createMediaStreamSource(stream);
    audio.floorSource.connect(audio.floorGain);
  }

  function detachChannel() {
    if (audio.source) {
      try { audio.source.disconnect(); } catch (_) { /* not connected */ }
    }
    audio.source = null;
    audio.analyser = null;
    ui.audio.srcObject = null;
  }

  function detachFloor() {
    if (audio.floorSource) {
      try { audio.floorSource.disconnect(); } catch (_) { /* not connected */ }
    }
    audio.floorSource = null;
    ui.audioFloor.srcObject = null;
  }

  function gainFor(percent) {
    const x = percent / 100;
    return x * x; // roughly perceptual; 100 % is unity gain
  }

  function applyVolume() {
    if (!audio.gain) return;
    audio.gain.gain.setTargetAtTime(gainFor(Number(ui.volume.value)), audio.ctx.currentTime, 0.02);
  }

  // The floor is mixed in only under an interpretation channel: on the floor
  // channel both tracks carry the same sound. While a switch is under way
  // both the chosen and the still-playing channel must be interpretations.
  function applyOriginal() {
    if (!audio.floorGain) return;
    const playing = st.session ? st.session.language : st.language;
    const on = !isFloor(st.language) && !isFloor(playing);
    const g = on ? gainFor(Number(ui.original.value)) : 0;
    audio.floorGain.gain.setTargetAtTime(g, audio.ctx.currentTime, 0.02);
  }

  // The Original slider: hidden without interpretation channels, disabled
  // (with the reason) on the floor channel or without a floor track.
  function renderOriginal() {
    const floorChosen = isFloor(st.language);
    const missing = !floorChosen && Boolean(st.session && st.session.floorAvailable === false);
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

  // A 0–100 % slider remembered in localStorage.
  function initSlider(input, output, key, fallback, apply) {
    let saved = null;
    try { saved = localStorage.getItem(key); } catch (_) { /* storage disabled */ }
    const n = saved === null ? NaN : Number(saved);
    input.value = String(Number.isFinite(n) && n >= 0 && n <= 100 ? n : fallback);
    showPercent(input, output);
    input.addEventListener("input", () => {
      showPercent(input, output);
      apply();
      try { localStorage.setItem(key, input.value); } catch (_) { /* storage disabled */ }
    });
  }

  function showPercent(input, output) {
    output.textContent = `${input.value} %`;
    input.setAttribute("aria-valuetext", `${input.value} percent`);
  }

  /* ----------------------------------------------------------- level meter */

  function timeDomain(an) {
    if (!audio.buf || audio.buf.length !== an.fftSize) audio.buf = new Float32Array(an.fftSize);
    an.getFloatTimeDomainData(audio.buf);
    return audio.buf;
  }

  // Mean square of the newest n samples (the buffer's tail is the newest).
  function meanSquareTail(buf, n) {
    n = Math.min(n, buf.length);
    let sum = 0;
    for (let i = buf.length - n; i < buf.length; i++) sum += buf[i] * buf[i];
    return n ? sum / n : 0;
  }

  const toDb = (meanSquare) => (meanSquare > 0 ? 10 * Math.log10(meanSquare) : -Infinity);

  function meterTick() {
    const an = audio.analyser;
    if (!an && audio.shown === 0) return;
    const db = an ? toDb(meanSquareTail(timeDomain(an), 2048)) : -Infinity;
    const s = st.session;
    // After a switch only once the new channel plays (see settle()).
    if (db > SILENCE_DB && st.firstAudioMs === null && st.postAt !== null && s &&
        performance.now() >= s.settleUntil) {
      st.firstAudioMs = Math.round(performance.now() - st.postAt);
    }
    const target = Math.min(1, Math.max(0, (db - SILENCE_DB) / -SILENCE_DB));
    audio.shown = Math.max(target, audio.shown - 0.05); // fast attack, gentle fall
    ui.meterFill.style.transform = `scaleX(${audio.shown.toFixed(3)})`;

    const now = performance.now();
    if (now - audio.ariaAt > 1000) {
      audio.ariaAt = now;
      const shownDb = Math.round(Math.max(SILENCE_DB, Math.min(0, db)));
      ui.meter.setAttribute("aria-valuenow", String(shownDb));
      ui.meter.setAttribute("aria-valuetext", db > SILENCE_DB ? "sound arriving" : "silent");
    }
  }

  /* -------------------------------------------------------- tone measurement */

  // Averages the analyser's spectrum (linear power) and the received signal's
  // power over `ms` milliseconds; see the test hook at the bottom. Only the
  // channel track, before any gain: the floor mixed in is never measured.
  // A channel switch under way is waited for first.
  function measureTone(ms) {
    ms = Math.max(0, Number(ms) || 0);
    const m = { power: null, frames: 0, sumSq: 0, samples: 0, lastTime: null, sampleRate: 0, fftSize: FFT_SIZE };
    return switchSettled().then(() => new Promise((resolve) => {
      const read = () => readMeasurement(m);
      read();
      const timer = setInterval(read, MEASURE_INTERVAL_MS);
      setTimeout(() => {
        clearInterval(timer);
        resolve(summariseMeasurement(m));
      }, ms);
    }));
  }

  function switchSettled() {
    const s = st.session;
    if (!s || !s.switching) return Promise.resolve();
    return Promise.race([s.switching, new Promise((resolve) => setTimeout(resolve, SWITCH_WAIT_MAX_MS))]);
  }

  function readMeasurement(m) {
    const an = audio.analyser;
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
    m.sampleRate = audio.ctx.sampleRate;
    m.fftSize = an.fftSize;

    // Only count samples that arrived since the previous read.
    const buf = timeDomain(an);
    const now = audio.ctx.currentTime;
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
    const level = m.samples ? toDb(m.sumSq / m.samples) : -Infinity;
    return {
      frequency: m.frames ? peakFrequency(m) : 0,
      level_db: Number.isFinite(level) ? Math.max(FLOOR_DB, level) : FLOOR_DB,
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

  /* ---------------------------------------------------------------- wiring */

  function init() {
    initSlider(ui.volume, ui.volumeValue, VOLUME_KEY, DEFAULT_VOLUME, applyVolume);
    initSlider(ui.original, ui.originalValue, ORIGINAL_KEY, DEFAULT_ORIGINAL, applyOriginal);
    renderPlayButton();
    renderOriginal();
    ui.audio.muted = true;
    ui.audioFloor.muted = true;
    ui.play.addEventListener("click", onPlayClick);
    // With ?autoplay=1 but no autoplay permission: any click unlocks sound.
    document.addEventListener("click", (e) => {
      if (st.needsGesture && !ui.play.contains(e.target)) unlockAudio();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && st.wanted) startRefresh();
    });
    window.addEventListener("pagehide", () => endSession());
    window.addEventListener("pageshow", (e) => {
      if (e.persisted && st.wanted && !st.session) startSession(st.language, true);
    });
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
   */
  window.tolkListener = {
    get state() { return st.state; },
    get message() { return st.message; },
    get language() { return st.language; },
    get firstAudioMs() { return st.firstAudioMs; },
    get channels() { return st.channels.map((c) => Object.assign({}, c)); },
    measureTone,
    play,
    stop,
    selectLanguage,
  };

  init();
})();
