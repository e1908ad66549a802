import { describe, expect, it } from 'vitest';
import { TolkApi } from '../src/api';
import type { PlayerHooks } from '../src/listening';
import { Store } from '../src/store';
import { interpretation, me } from './fixtures';

function setup() {
  const levels: number[] = [];
  const played: (string | null)[] = [];
  let hooks: PlayerHooks | null = null;
  let base = () => '';
  const player = {
    chosen: null as string | null,
    choose(language: string | null) { this.chosen = language; played.push(language); },
  };
  const store = new Store(new TolkApi('https://tolk.example/', () => 't'), (l) => levels.push(l), (b, h) => {
    base = b;
    hooks = h;
    return player;
  });
  return { store, levels, played, player, hooks: () => hooks!, base: () => base() };
}

describe('the store: choice, channel and the meeting’s speaker level', () => {
  it('plays a channel and turns the meeting down to the Original volume', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.setOriginal(15);
    t.store.choose('fr');
    expect(t.played).toEqual(['fr']);
    expect(t.levels).toEqual([0.15]);
    expect(t.store.state.choice).toBe('fr');
    expect(t.base()).toBe('https://tolk.example/whep/ev1/');
  });

  it('follows the slider only while a channel plays', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.setOriginal(30);
    expect(t.levels).toEqual([]);
    t.store.choose('de');
    t.store.setOriginal(40);
    expect(t.levels).toEqual([0.3, 0.4]);
  });

  it('gives the meeting its full volume back for Original', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.choose('fr');
    t.store.choose(null);
    expect(t.played).toEqual(['fr', null]);
    expect(t.levels[t.levels.length - 1]).toBe(1);
    expect(t.store.state.choice).toBeNull();
  });

  it('ignores a language that has no channel', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.choose('it');
    expect(t.store.state.choice).toBeNull();
    expect(t.played).toEqual([]);
  });

  it('goes back to Original when the interpretation ends or the channel goes', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.choose('fr');
    const noFrench = interpretation();
    noFrench.channels = { ...noFrench.channels, channels: noFrench.channels.channels.filter((c) => c.language !== 'fr') };
    t.store.apply(me('viewer', noFrench));
    expect(t.store.state.choice).toBeNull();
    expect(t.levels[t.levels.length - 1]).toBe(1);
    t.store.choose('de');
    t.store.apply(me('viewer', null));
    expect(t.played).toEqual(['fr', null, 'de', null]);
  });

  it('keeps the error sentence and returns to Original when the player gives up', () => {
    const t = setup();
    t.store.apply(me('viewer'));
    t.store.choose('fr');
    t.player.chosen = null; // the player gave up (a permanent error)
    t.hooks().status({ state: 'error', text: 'The interpretation is full.' });
    expect(t.store.state.choice).toBeNull();
    expect(t.store.state.status.text).toBe('The interpretation is full.');
    expect(t.levels[t.levels.length - 1]).toBe(1);
  });
});
