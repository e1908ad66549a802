/*
 * The interpreter's section: the languages they are named for and "Open my
 * booth" (Tolk's booth page in a window of its own: its microphone never
 * goes into the meeting).
 */
import type { ReactElement } from 'react';
import { useStore, useStoreObject } from '../view';
import { ErrorLine } from './common';

export function Booth(): ReactElement | null {
  const store = useStoreObject();
  const { me, boothError } = useStore();
  const interp = me && me.interpretation;
  if (!interp || !interp.my_languages.length) return null;
  const names = interp.my_languages.map(store.label).join(', ');
  return (
    <section className="tolk-section" data-tolk="booth" aria-labelledby="tolk-booth-title">
      <h3 id="tolk-booth-title" className="tolk-section__title">Your booth</h3>
      <p className="tolk-text">You interpret into {names}.</p>
      <button type="button" className="tolk-button tolk-button--primary" data-tolk="open-booth" onClick={() => void store.openBooth()}>
        Open my booth
      </button>
      <p className="tolk-help">The booth opens in its own window; its microphone never goes into the meeting.</p>
      <ErrorLine text={boothError} tolk="booth-error" />
    </section>
  );
}
