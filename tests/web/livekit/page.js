// The LiveKit stand-in's test page: the real npm livekit-client (its ESM build), driven by the
// tests through window.lk: join a room, publish the (fake) microphone, mute, list the other
// participants, and measure the tone a subscribed remote track plays (WebAudio analyser:
// the dominant FFT bin in Hz, the RMS level in dBFS).
import { Room, RoomEvent, Track } from './node_modules/livekit-client/dist/livekit-client.esm.mjs';

const show = (state) => {
  document.getElementById('state').textContent = state;
};

const lk = {
  room: null,
  state: 'idle',
  error: null,
  /** What happened, in order: {type, identity, track?}. */
  events: [],
  /** Analysers of the subscribed audio tracks, by track sid. */
  analysers: new Map(),
  audioContext: null,

  async join(url, token, options = {}) {
    const room = new Room(options);
    lk.room = room;
    const note = (type) => (...args) => {
      const participant = args.find((a) => a && a.identity !== undefined);
      const publication = args.find((a) => a && a.trackSid !== undefined);
      lk.events.push({ type, identity: participant && participant.identity, track: publication && publication.trackSid });
      lk.render();
    };
    room.on(RoomEvent.ParticipantConnected, note('participantConnected'));
    room.on(RoomEvent.ParticipantDisconnected, note('participantDisconnected'));
    room.on(RoomEvent.TrackMuted, note('trackMuted'));
    room.on(RoomEvent.TrackUnmuted, note('trackUnmuted'));
    room.on(RoomEvent.TrackPublished, note('trackPublished'));
    room.on(RoomEvent.RoomMetadataChanged, note('roomMetadataChanged'));
    room.on(RoomEvent.Disconnected, (reason) => {
      lk.state = 'disconnected';
      lk.events.push({ type: 'disconnected', reason });
      show(lk.state);
    });
    room.on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
      lk.events.push({ type: 'trackSubscribed', identity: participant.identity, track: publication.trackSid });
      if (track.kind !== Track.Kind.Audio) return;
      const element = track.attach();
      document.getElementById('audio').appendChild(element);
      if (!lk.audioContext) lk.audioContext = new AudioContext();
      const ctx = lk.audioContext;
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 8192;
      ctx.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
      ctx.resume();
      lk.analysers.set(publication.trackSid, analyser);
    });
    try {
      lk.state = 'connecting';
      show(lk.state);
      await room.connect(url, token, { autoSubscribe: true });
      lk.state = 'connected';
    } catch (e) {
      lk.state = 'failed';
      lk.error = String(e && e.message ? e.message : e);
    }
    show(lk.state);
    lk.render();
    return lk.state;
  },

  /** Publish the microphone without browser processing (the test tone stays a pure tone). */
  async publishMicrophone() {
    await lk.room.localParticipant.setMicrophoneEnabled(true, {
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    });
    const publication = lk.room.localParticipant.getTrackPublication(Track.Source.Microphone);
    return publication ? publication.trackSid : null;
  },

  async mute(muted) {
    const publication = lk.room.localParticipant.getTrackPublication(Track.Source.Microphone);
    if (!publication || !publication.track) throw new Error('no microphone published');
    if (muted) await publication.track.mute();
    else await publication.track.unmute();
    return publication.isMuted;
  },

  /** The identities of the other participants this client sees. */
  participants() {
    return lk.room ? [...lk.room.remoteParticipants.values()].map((p) => p.identity) : [];
  },

  /** How many remote audio tracks play. */
  remoteAudioTracks() {
    return lk.analysers.size;
  },

  /** The dominant frequency and level of what a remote track plays, over `ms`. */
  async remoteTone(ms = 1500, trackSid = null) {
    const analyser = trackSid ? lk.analysers.get(trackSid) : [...lk.analysers.values()][0];
    if (!analyser) throw new Error('no remote audio track');
    const bins = new Float32Array(analyser.frequencyBinCount);
    const sum = new Float64Array(analyser.frequencyBinCount);
    const samples = new Float32Array(analyser.fftSize);
    let energy = 0;
    let count = 0;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      analyser.getFloatFrequencyData(bins);
      for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
      analyser.getFloatTimeDomainData(samples);
      for (const s of samples) energy += s * s;
      count += samples.length;
    }
    let best = 1;
    for (let i = 2; i < sum.length; i++) if (sum[i] > sum[best]) best = i;
    const hz = (best * analyser.context.sampleRate) / analyser.fftSize;
    const rms = Math.sqrt(energy / Math.max(count, 1));
    return { hz, db: rms > 0 ? 20 * Math.log10(rms) : -200 };
  },

  async leave() {
    if (lk.room) await lk.room.disconnect();
  },

  render() {
    const list = document.getElementById('participants');
    list.replaceChildren(...lk.participants().map((id) => {
      const li = document.createElement('li');
      li.textContent = id;
      return li;
    }));
  },
};

window.lk = lk;
show('ready');
