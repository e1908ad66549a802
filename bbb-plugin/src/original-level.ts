/*
 * The "Original volume" a listener set: how loud the meeting's own audio
 * stays under an interpretation, 0–100 %, 15 % unless they chose otherwise,
 * remembered in the browser (localStorage). It is the plugin's state, not a
 * slider's: a language chosen from the audio menu needs it while the panel
 * (and its slider) is closed.
 */

export const ORIGINAL_KEY = 'tolk.bbb.original';
export const DEFAULT_ORIGINAL = 15;

type Store = Pick<Storage, 'getItem' | 'setItem'>;

function storage(): Store | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch (_) {
    return null; // storage disabled
  }
}

export function clampPercent(value: unknown, fallback = DEFAULT_ORIGINAL): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() ? Number(value) : NaN;
  return Number.isFinite(n) ? Math.round(Math.min(100, Math.max(0, n))) : fallback;
}

export function loadOriginal(store: Store | null = storage()): number {
  let saved: string | null = null;
  try {
    saved = store ? store.getItem(ORIGINAL_KEY) : null;
  } catch (_) { /* storage disabled */ }
  return saved === null ? DEFAULT_ORIGINAL : clampPercent(saved);
}

export function saveOriginal(percent: number, store: Store | null = storage()): number {
  const p = clampPercent(percent);
  try {
    if (store) store.setItem(ORIGINAL_KEY, String(p));
  } catch (_) { /* storage disabled or full: the level still applies now */ }
  return p;
}
