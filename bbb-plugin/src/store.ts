/*
 * The plugin's state and what changes it, outside React: the panel lives in
 * a React root of its own (BigBlueButton's floating window), the actions bar
 * and the audio menu in BigBlueButton's, and all of them read this one
 * store (useStore in view.ts).
 *
 * This file owns: polling GET /api/v1/bbb/me every 3 s (who is on air, the
 * moderators' figures) with backoff while Tolk cannot be reached, the
 * listener's choice and what follows from it (the channel played, the
 * meeting's speaker level), the remembered "Original volume", whether the
 * panel is open, the participants BigBlueButton lists, and opening the
 * interpreter's booth window.
 */
import { Backoff, isPermanent } from '../../relay/web/http.js';
import type { TolkApi } from './api';
import { channelFor, choiceLabel, keptChoice, speakerLevel, type Choice } from './choice';
import { ChannelPlayer, IDLE, type PlayerHooks, type Status } from './listening';
import { loadOriginal, saveOriginal } from './original-level';
import type { Me, Participant } from './types';

export const POLL_MS = 3000;
const BOOTH_WINDOW = 'tolk-booth';

export interface State {
  me: Me | null;
  loaded: boolean; // the first answer (or error) arrived
  problem: string; // why Tolk's answer is missing, as a sentence ("" when fine)
  choice: Choice;
  status: Status;
  original: number; // percent
  panelOpen: boolean;
  participants: Participant[];
  boothError: string;
}

export type SpeakerLevel = (level: number) => void;

// What the store needs of the channel player (listening.ts); tests give a fake.
export interface Player {
  readonly chosen: string | null;
  choose(language: string | null): void;
}

export type MakePlayer = (whepBase: () => string, hooks: PlayerHooks) => Player;

const realPlayer: MakePlayer = (whepBase, hooks) => new ChannelPlayer(whepBase, hooks);

export class Store {
  state: State;
  private listeners = new Set<() => void>();
  private timer = 0;
  private backoff = new Backoff();
  private player: Player | null = null;
  private boothWindow: Window | null = null;

  constructor(
    readonly api: TolkApi,
    private readonly setSpeakerLevel: SpeakerLevel,
    private readonly makePlayer: MakePlayer = realPlayer,
  ) {
    this.state = {
      me: null,
      loaded: false,
      problem: '',
      choice: null,
      status: IDLE,
      original: loadOriginal(),
      panelOpen: false,
      participants: [],
      boothError: '',
    };
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  get = (): State => this.state;

  private set(patch: Partial<State>): void {
    this.state = { ...this.state, ...patch };
    this.listeners.forEach((fn) => fn());
  }

  /* ------------------------------------------------------------ polling */

  start(): void {
    if (!this.timer) void this.refresh();
  }

  // GET /me now; the next one in 3 s (or after the backoff step while Tolk
  // does not answer). A permanent refusal (401, 403) is shown and polling
  // slows to the longest step.
  refresh = async (): Promise<void> => {
    clearTimeout(this.timer);
    let wait = POLL_MS;
    try {
      const me = await this.api.me();
      this.backoff.reset();
      this.apply(me);
    } catch (err) {
      const e = err as Error & { status?: number };
      wait = 1000 * (isPermanent(e) ? 15 : this.backoff.next());
      this.set({ loaded: true, problem: e.message });
    }
    this.timer = window.setTimeout(this.refresh, wait);
  };

  // A new answer from Tolk: keeps the choice while its channel exists.
  apply(me: Me): void {
    const kept = keptChoice(me.interpretation, this.state.choice);
    this.set({ me, loaded: true, problem: '' });
    if (kept !== this.state.choice) this.choose(kept);
  }

  /* ------------------------------------------------------------ listening */

  label = (language: string): string => choiceLabel(this.state.me ? this.state.me.interpretation : null, language);

  private channelPlayer(): Player {
    if (!this.player) {
      this.player = this.makePlayer(() => this.whepBase(), {
        label: this.label,
        status: (status) => this.playerStatus(status),
      });
    }
    return this.player;
  }

  private whepBase(): string {
    const interp = this.state.me && this.state.me.interpretation;
    return this.api.url(interp ? interp.whep.replace(/\/?$/, '/') : 'whep/');
  }

  // The player gave up (a permanent error): back to Original, keep the sentence.
  private playerStatus(status: Status): void {
    if (status.state === 'error' && this.player && this.player.chosen === null && this.state.choice !== null) {
      this.set({ choice: null, status });
      this.setSpeakerLevel(1);
      return;
    }
    this.set({ status });
  }

  // Original (null) or a channel: the channel plays, the meeting's audio
  // goes down to the Original volume (or back to full).
  choose = (choice: Choice): void => {
    const interp = this.state.me ? this.state.me.interpretation : null;
    const next = choice && channelFor(interp, choice) ? channelFor(interp, choice)!.language : null;
    if (next === null && this.state.choice === null && !this.player) return;
    this.set({ choice: next });
    this.channelPlayer().choose(next);
    this.setSpeakerLevel(speakerLevel(next, this.state.original));
  };

  setOriginal = (percent: number): void => {
    const original = saveOriginal(percent);
    this.set({ original });
    if (this.state.choice !== null) this.setSpeakerLevel(speakerLevel(this.state.choice, original));
  };

  /* ------------------------------------------------------------ panel */

  openPanel = (): void => this.set({ panelOpen: true });

  closePanel = (): void => this.set({ panelOpen: false });

  togglePanel = (): void => this.set({ panelOpen: !this.state.panelOpen });

  setParticipants(participants: Participant[]): void {
    const old = this.state.participants;
    const same = old.length === participants.length &&
      old.every((p, i) => p.userId === participants[i].userId && p.name === participants[i].name && p.role === participants[i].role);
    if (!same) this.set({ participants });
  }

  /* ------------------------------------------------------------ booth */

  // "Open my booth": a window named so a second click focuses it. It is
  // opened at once (the click still counts as a gesture for the popup
  // blocker) and sent to the booth once Tolk answered.
  openBooth = async (): Promise<void> => {
    if (this.boothWindow && !this.boothWindow.closed) {
      this.boothWindow.focus();
      return;
    }
    const win = window.open('', BOOTH_WINDOW);
    this.set({ boothError: '' });
    try {
      const { url } = await this.api.myBooth();
      if (win) {
        win.location.href = url;
        this.boothWindow = win;
      } else {
        this.boothWindow = window.open(url, BOOTH_WINDOW);
        if (!this.boothWindow) this.set({ boothError: 'The browser blocked the booth window: allow pop-ups for this meeting and try again.' });
      }
    } catch (err) {
      if (win) win.close();
      this.set({ boothError: (err as Error).message });
    }
  };
}
