/*
 * Hearing an interpretation channel inside the meeting.
 *
 * This file owns: the WHEP session of the chosen channel (one recvonly audio
 * section: the floor is the meeting's own audio, so Tolk's second section is
 * not asked for), starting it on the first choice, switching channel on the
 * live session (POST {session}/channel, no renegotiation) on later ones,
 * ending it for "Original", playing the received track, and the status line
 * ("Connecting…", "Listening to …", "… Reconnecting in 3 s."). The session's
 * lifecycle (offer, answer, timeouts, reconnects with backoff) is
 * session.js's, WebAudio audio.js's and HTTP http.js's: Tolk's own listener
 * page uses the same three.
 */
import { isPermanent, problemFrom, request, sentence } from '../../relay/web/http.js';
import { SessionLink, connectionState } from '../../relay/web/session.js';
import { PageAudio, TrackPlayer } from '../../relay/web/audio.js';

export type ListenState = 'idle' | 'connecting' | 'listening' | 'reconnecting' | 'error';

export interface Status {
  state: ListenState;
  text: string;
}

export const IDLE: Status = { state: 'idle', text: '' };

export interface PlayerHooks {
  status(s: Status): void;
  label(language: string): string; // a language's name, for the status line
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Session = any; // session.js's session object, with our fields (language, want, tx)

export class ChannelPlayer {
  private readonly link: SessionLink;
  private readonly sound: PageAudio;
  private readonly player: TrackPlayer;
  private gain: GainNode | null = null;
  private want: string | null = null; // the channel the listener chose (null: none)
  private switching = false;

  constructor(private readonly whepBase: () => string, private readonly hooks: PlayerHooks) {
    const el = document.createElement('audio');
    el.dataset.tolk = 'channel-audio';
    el.hidden = true;
    document.body.append(el);
    this.player = new TrackPlayer(el, false);
    this.sound = new PageAudio({
      build: (ctx: AudioContext) => {
        this.gain = ctx.createGain();
        this.gain.connect(ctx.destination);
      },
      tick: () => {},
      wanted: () => this.want !== null,
      gestureNeeded: () => {
        if (this.sound.needsGesture) this.say('error', 'The browser holds the sound back: click anywhere in the meeting to hear the interpretation.');
      },
    });
    this.link = new SessionLink({
      headers: (extra: Record<string, string>) => extra,
      problem: (res: Response) => problemFrom(res, { fallback: { 503: 'The interpretation is full.' } }),
      prepare: (s: Session, pc: RTCPeerConnection) => {
        s.tx = pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.ontrack = (e) => {
          if (s.closed) return;
          const ctx = this.sound.ensure();
          if (ctx && this.gain) this.player.attach(ctx, e.track, this.gain);
        };
      },
      connected: (s: Session) => this.showSession(s),
      status: (state: ListenState, text: string) => this.say(state, text),
      failed: (err: Error & { status?: number }) => this.failed(err),
      restart: () => this.start(true),
      ended: () => this.player.detach(),
    });
    document.addEventListener('click', () => {
      if (this.sound.needsGesture) this.sound.unlock([this.player]);
    });
    window.addEventListener('pagehide', () => this.link.end());
  }

  get chosen(): string | null {
    return this.want;
  }

  // Plays channel `language`, or stops for null (Original).
  choose(language: string | null): void {
    if (language === this.want) return;
    this.want = language;
    if (language === null) {
      this.link.stop();
      this.say('idle', '');
      return;
    }
    this.sound.ensure(); // on the listener's click: the browser lets the sound start
    this.link.backoff.reset();
    const s = this.link.current;
    if (s && s.url && !s.closed) this.switchTo(s);
    else this.start(false);
  }

  private start(retry: boolean): void {
    const language = this.want;
    if (language === null) return;
    const s = this.link.begin({ language, tx: null });
    const name = this.hooks.label(language);
    this.say(retry ? 'reconnecting' : 'connecting', `${retry ? 'Reconnecting' : 'Connecting'} to ${name}…`);
    const url = new URL(`${encodeURIComponent(language)}`, this.whepBase()).href;
    void this.link.connect(s, url);
  }

  // One switch request at a time, until the session carries the last choice;
  // a session the server no longer switches is replaced by a new one.
  private async switchTo(s: Session): Promise<void> {
    this.showSession(s);
    if (this.switching) return;
    this.switching = true;
    try {
      while (this.want !== null && s.language !== this.want && s === this.link.current) {
        const language = this.want;
        const res: Response = await request(`${String(s.url).replace(/\/+$/, '')}/channel`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ language }),
        });
        if (s !== this.link.current) return;
        if (!res.ok) throw await problemFrom(res);
        s.language = language;
        this.showSession(s);
      }
    } catch (_) {
      if (s === this.link.current && this.want !== null) this.start(false);
    } finally {
      this.switching = false;
    }
  }

  private showSession(s: Session): void {
    if (this.want === null) return;
    if (s.language !== this.want) this.say('connecting', `Switching to ${this.hooks.label(this.want)}…`);
    else if (s.pc && connectionState(s.pc) === 'connected') this.say('listening', `Listening to ${this.hooks.label(s.language)}.`);
    else this.say('connecting', `Connecting to ${this.hooks.label(s.language)}…`);
  }

  private failed(err: Error & { status?: number }): void {
    if (this.want === null) return;
    const message = sentence(err && err.message ? err.message : 'The connection failed');
    if (isPermanent(err)) {
      this.want = null;
      this.say('error', message);
      return;
    }
    this.link.retry(err, (n: number) => `${message} Reconnecting in ${n} s.`);
  }

  private say(state: ListenState, text: string): void {
    this.hooks.status({ state, text });
  }
}
