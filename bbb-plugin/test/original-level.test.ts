import { describe, expect, it } from 'vitest';
import { clampPercent, DEFAULT_ORIGINAL, loadOriginal, ORIGINAL_KEY, saveOriginal } from '../src/original-level';

function memory(initial: Record<string, string> = {}) {
  const data = new Map(Object.entries(initial));
  return {
    data,
    getItem: (k: string) => (data.has(k) ? data.get(k)! : null),
    setItem: (k: string, v: string) => { data.set(k, v); },
  };
}

describe('the remembered Original volume', () => {
  it('is 15 % for a listener who never moved the slider', () => {
    expect(loadOriginal(memory())).toBe(DEFAULT_ORIGINAL);
    expect(DEFAULT_ORIGINAL).toBe(15);
  });

  it('comes back as it was saved', () => {
    const store = memory();
    expect(saveOriginal(42, store)).toBe(42);
    expect(store.data.get(ORIGINAL_KEY)).toBe('42');
    expect(loadOriginal(store)).toBe(42);
  });

  it('is clamped and rounded, and garbage falls back to the default', () => {
    expect(loadOriginal(memory({ [ORIGINAL_KEY]: '250' }))).toBe(100);
    expect(loadOriginal(memory({ [ORIGINAL_KEY]: '-1' }))).toBe(0);
    expect(loadOriginal(memory({ [ORIGINAL_KEY]: 'loud' }))).toBe(DEFAULT_ORIGINAL);
    expect(loadOriginal(memory({ [ORIGINAL_KEY]: '' }))).toBe(DEFAULT_ORIGINAL);
    expect(clampPercent(33.6)).toBe(34);
  });

  it('still works when the browser refuses storage', () => {
    const broken = {
      getItem: () => { throw new Error('SecurityError'); },
      setItem: () => { throw new Error('QuotaExceededError'); },
    };
    expect(loadOriginal(broken)).toBe(DEFAULT_ORIGINAL);
    expect(saveOriginal(70, broken)).toBe(70);
    expect(loadOriginal(null)).toBe(DEFAULT_ORIGINAL);
  });
});
