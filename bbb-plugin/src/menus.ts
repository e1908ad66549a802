/*
 * What each participant gets, by role, as plain descriptions the plugin
 * turns into BigBlueButton's extensible-area items (plugin.tsx):
 *   listener     (the meeting has an interpretation) the actions-bar button
 *                with the current choice, and the audio menu's channels
 *   interpreter  (named for a language) "Open my booth"
 *   moderator    the interpretation controls, also before one runs
 * Nothing at all for a viewer of a meeting without interpretation.
 */
import { channelsOffered, choiceLabel, ORIGINAL, type Choice } from './choice';
import type { Me } from './types';

export interface ActionSpec {
  key: 'listen' | 'booth';
  icon: string; // BigBlueButton icon name
  tooltip: string;
}

export interface AudioOptionSpec {
  choice: Choice;
  label: string;
  current: boolean;
}

export interface Sections {
  listener: boolean;
  booth: boolean;
  moderator: boolean;
}

export function sections(me: Me | null): Sections {
  const interp = me ? me.interpretation : null;
  return {
    listener: Boolean(interp),
    booth: Boolean(interp && interp.my_languages && interp.my_languages.length),
    moderator: Boolean(me && me.user.moderator),
  };
}

export const anything = (s: Sections): boolean => s.listener || s.booth || s.moderator;

export function actionsBar(me: Me | null, choice: Choice): ActionSpec[] {
  const s = sections(me);
  const out: ActionSpec[] = [];
  if (s.listener) {
    out.push({ key: 'listen', icon: 'listen', tooltip: `Interpretation: ${choiceLabel(me!.interpretation, choice)}` });
  } else if (s.moderator) {
    out.push({ key: 'listen', icon: 'listen', tooltip: 'Interpretation: not running' });
  }
  if (s.booth) out.push({ key: 'booth', icon: 'popout_window', tooltip: 'Open my booth' });
  return out;
}

// The audio settings menu (BigBlueButton shows it once audio is joined):
// Original and every interpretation channel, the current one marked.
export function audioMenu(me: Me | null, choice: Choice): AudioOptionSpec[] {
  const interp = me ? me.interpretation : null;
  if (!interp) return [];
  const options: AudioOptionSpec[] = [{ choice: null, label: `Listen to: ${ORIGINAL}`, current: !choice }];
  for (const ch of channelsOffered(interp)) {
    options.push({ choice: ch.language, label: `Listen to: ${ch.label || ch.language}`, current: ch.language === choice });
  }
  return options;
}
