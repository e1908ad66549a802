import { describe, expect, it } from 'vitest';
import { actionsBar, anything, audioMenu, sections } from '../src/menus';
import { me } from './fixtures';

describe('what each role gets', () => {
  it('gives a viewer nothing while the meeting has no interpretation', () => {
    const viewer = me('viewer', null);
    expect(anything(sections(viewer))).toBe(false);
    expect(actionsBar(viewer, null)).toEqual([]);
    expect(audioMenu(viewer, null)).toEqual([]);
    expect(anything(sections(null))).toBe(false);
  });

  it('gives a listener the button with the current choice and the audio menu', () => {
    const viewer = me('viewer');
    expect(sections(viewer)).toEqual({ listener: true, booth: false, moderator: false });
    expect(actionsBar(viewer, null)).toEqual([{ key: 'listen', icon: 'listen', tooltip: 'Interpretation: Original' }]);
    expect(actionsBar(viewer, 'fr')[0].tooltip).toBe('Interpretation: Français');
    const menu = audioMenu(viewer, 'de');
    expect(menu.map((o) => o.label)).toEqual(['Listen to: Original', 'Listen to: Français', 'Listen to: Deutsch']);
    expect(menu.filter((o) => o.current).map((o) => o.choice)).toEqual(['de']);
    expect(audioMenu(viewer, null)[0]).toEqual({ choice: null, label: 'Listen to: Original', current: true });
  });

  it('gives a named interpreter "Open my booth" as well', () => {
    const interpreter = me('interpreter');
    expect(sections(interpreter)).toEqual({ listener: true, booth: true, moderator: false });
    expect(actionsBar(interpreter, null).map((a) => a.key)).toEqual(['listen', 'booth']);
    expect(actionsBar(interpreter, null)[1]).toEqual({ key: 'booth', icon: 'popout_window', tooltip: 'Open my booth' });
  });

  it('gives a moderator the controls even before an interpretation runs', () => {
    const moderator = me('moderator', null);
    expect(sections(moderator)).toEqual({ listener: false, booth: false, moderator: true });
    expect(actionsBar(moderator, null)).toEqual([{ key: 'listen', icon: 'listen', tooltip: 'Interpretation: not running' }]);
    expect(audioMenu(moderator, null)).toEqual([]);
    expect(sections(me('moderator'))).toEqual({ listener: true, booth: false, moderator: true });
  });
});
