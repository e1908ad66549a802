/*
 * The shapes of Tolk's plugin API answers (GET {tolk}/api/v1/bbb/me and the
 * moderators' calls), in the words of Tolk's pages: floor, channel, booth,
 * on air, listener.
 */

// A channel as listeners see it (GET /api/v1/events/{event}/channels).
export interface Channel {
  language: string;
  kind: 'floor' | 'interpretation';
  label: string; // the language's name in itself ("Français")
  speaking?: 'floor' | 'interpreter' | string;
  interpreter?: string; // who is on air, by name
}

export interface Channels {
  event: { id: string; title?: string; starts_at?: string; ends_at?: string };
  channels: Channel[];
}

export interface Interpreter {
  user_id: string;
  name: string;
  languages: string[];
}

export type FloorState = 'waiting' | 'joining' | 'live' | 'error' | 'ended';

export interface Floor {
  state: FloorState;
  detail?: string;
}

export interface Interpretation {
  event: string;
  title: string;
  floor_language: string;
  languages: string[];
  channels: Channels;
  whep: string; // relative to {tolk}: "whep/<event>/"
  my_languages: string[]; // the languages this participant is named interpreter for
  // Moderators only:
  interpreters?: Interpreter[];
  listeners?: Record<string, number>;
  floor?: Floor;
}

export interface Me {
  meeting: { id: string; external_id: string };
  user: { id: string; name: string; moderator: boolean };
  interpretation: Interpretation | null;
}

export interface LanguageName {
  code: string;
  label: string;
}

export interface StartRequest {
  floor_language: string;
  languages: string[];
  expected_listeners: number;
}

export interface InterpreterRequest {
  name: string;
  languages: string[];
}

// A participant of the meeting, as BigBlueButton's data hooks give them.
export interface Participant {
  userId: string;
  name: string;
  role: string;
}
