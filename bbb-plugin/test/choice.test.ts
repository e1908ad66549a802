import { describe, expect, it } from 'vitest';
import { channelsOffered, choiceLabel, keptChoice, onAirText, speakerLevel } from '../src/choice';
import { interpretation } from './fixtures';

describe('the language choice', () => {
  const interp = interpretation();

  it('offers the interpretation channels, not the floor (the meeting plays it)', () => {
    expect(channelsOffered(interp).map((c) => c.language)).toEqual(['fr', 'de']);
    expect(channelsOffered(null)).toEqual([]);
  });

  it('names the choice: Original or the language in itself', () => {
    expect(choiceLabel(interp, null)).toBe('Original');
    expect(choiceLabel(interp, 'fr')).toBe('Français');
    expect(choiceLabel(interp, 'xx')).toBe('xx');
  });

  it('keeps a channel that still exists, matching its case', () => {
    expect(keptChoice(interp, 'FR')).toBe('fr');
    expect(keptChoice(interp, null)).toBeNull();
  });

  it('falls back to Original when the channel or the interpretation is gone', () => {
    expect(keptChoice(interpretation({ languages: ['de'], channels: { ...interp.channels, channels: interp.channels.channels.filter((c) => c.language !== 'fr') } }), 'fr')).toBeNull();
    expect(keptChoice(null, 'fr')).toBeNull();
    expect(keptChoice(interp, 'en')).toBeNull(); // the floor channel is Original
  });

  it('says who is on air', () => {
    const [, fr, de] = interp.channels.channels;
    expect(onAirText(fr)).toBe('Ana on air');
    expect(onAirText({ ...fr, interpreter: undefined })).toBe('Interpreter on air');
    expect(onAirText(de)).toMatch(/original speech/);
  });

  it('sets the meeting to full volume for Original, to the Original volume under a channel', () => {
    expect(speakerLevel(null, 15)).toBe(1);
    expect(speakerLevel('fr', 15)).toBe(0.15);
    expect(speakerLevel('fr', 0)).toBe(0);
    expect(speakerLevel('fr', 140)).toBe(1);
    expect(speakerLevel('fr', -3)).toBe(0);
    expect(speakerLevel('fr', NaN)).toBe(0);
  });
});
