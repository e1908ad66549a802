/*
 * The listener's choice, as pure functions: "Original" (null: the meeting's
 * own audio, the floor) or an interpretation channel by language; what the
 * choice is called, whether it still exists after the interpretation
 * changed, who is on air, and the meeting's speaker level that goes with it.
 */
import type { Channel, Interpretation } from './types';

export type Choice = string | null; // a channel's language, or null for Original

export const ORIGINAL = 'Original';

// The channels a listener can pick besides Original: the floor channel is
// what the meeting itself plays, so only interpretation channels are offered.
export function channelsOffered(interp: Interpretation | null): Channel[] {
  if (!interp || !interp.channels || !Array.isArray(interp.channels.channels)) return [];
  return interp.channels.channels.filter((c) => c && c.kind === 'interpretation' && typeof c.language === 'string');
}

export function channelFor(interp: Interpretation | null, language: Choice): Channel | null {
  if (!language) return null;
  const want = language.toLowerCase();
  return channelsOffered(interp).find((c) => c.language.toLowerCase() === want) || null;
}

export function choiceLabel(interp: Interpretation | null, choice: Choice): string {
  if (!choice) return ORIGINAL;
  const ch = channelFor(interp, choice);
  return (ch && ch.label) || choice;
}

// The choice after the interpretation changed: Original when the channel is
// gone (or the whole interpretation ended).
export function keptChoice(interp: Interpretation | null, choice: Choice): Choice {
  const ch = channelFor(interp, choice);
  return ch ? ch.language : null;
}

// Who is heard on a channel, in a few words.
export function onAirText(ch: Channel): string {
  if (ch.speaking === 'interpreter') return ch.interpreter ? `${ch.interpreter} on air` : 'Interpreter on air';
  return 'No interpreter on air: original speech';
}

// BigBlueButton's speaker level (0–1) for a choice: the meeting at full
// volume for Original, at the "Original volume" under an interpretation.
export function speakerLevel(choice: Choice, originalPercent: number): number {
  if (!choice) return 1;
  const p = Number.isFinite(originalPercent) ? Math.min(100, Math.max(0, originalPercent)) : 0;
  return Math.round(p) / 100;
}
