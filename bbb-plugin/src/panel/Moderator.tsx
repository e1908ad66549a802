/*
 * The moderators' "Interpretation" section: the start form while none runs,
 * the running interpretation's controls afterwards.
 */
import type { ReactElement } from 'react';
import { useStore } from '../view';
import { Running } from './Running';
import { StartForm } from './StartForm';

export function Moderator(): ReactElement | null {
  const { me } = useStore();
  if (!me || !me.user.moderator) return null;
  const interp = me.interpretation;
  return (
    <section className="tolk-section" data-tolk="moderator" aria-labelledby="tolk-moderator-title">
      <h3 id="tolk-moderator-title" className="tolk-section__title">
        {interp ? 'Running the interpretation' : 'Interpretation'}
      </h3>
      {interp ? <Running interp={interp} /> : <StartForm />}
    </section>
  );
}
