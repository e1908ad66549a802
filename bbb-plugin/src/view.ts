/*
 * React's view of the store (store.ts): every root the plugin renders into
 * (its own and the floating window's) reads the same state through useStore,
 * and a moderator's call runs through useAction (busy flag and the error
 * sentence to show next to the button).
 */
import { createContext, useCallback, useContext, useState, useSyncExternalStore } from 'react';
import type { State, Store } from './store';

export const StoreContext = createContext<Store | null>(null);

export function useStoreObject(): Store {
  const store = useContext(StoreContext);
  if (!store) throw new Error('The Tolk panel was rendered outside its store.');
  return store;
}

export function useStore(): State {
  const store = useStoreObject();
  return useSyncExternalStore(store.subscribe, store.get);
}

export interface Action<A extends unknown[]> {
  run: (...args: A) => Promise<boolean>;
  busy: boolean;
  error: string;
  clear: () => void;
}

// Runs fn, then refreshes Tolk's view of the meeting; false (and error set) when it failed.
export function useAction<A extends unknown[]>(fn: (...args: A) => Promise<unknown>): Action<A> {
  const store = useStoreObject();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = useCallback(async (...args: A) => {
    setBusy(true);
    setError('');
    try {
      await fn(...args);
      await store.refresh();
      return true;
    } catch (err) {
      setError((err as Error).message);
      return false;
    } finally {
      setBusy(false);
    }
  }, [fn, store]);
  return { run, busy, error, clear: () => setError('') };
}
