/*
 * The plugin's panel, shown in BigBlueButton's floating window: a title bar
 * with the meeting's interpretation and a close button, then the sections
 * this participant gets (an interpreter's booth first, then listening, then
 * the moderators' controls) and Tolk's problem, if
 * any, as a sentence.
 */
import type { ReactElement } from 'react';
import { useStore, useStoreObject } from '../view';
import { Booth } from './Booth';
import { Listener } from './Listener';
import { Moderator } from './Moderator';

export function Panel(): ReactElement {
  const store = useStoreObject();
  const { me, problem, loaded } = useStore();
  const interp = me && me.interpretation;
  return (
    <div className="tolk-panel" data-tolk="panel" role="dialog" aria-labelledby="tolk-panel-title">
      <header className="tolk-panel__header">
        <div>
          <h2 id="tolk-panel-title" className="tolk-panel__title">Interpretation</h2>
          {interp && <p className="tolk-panel__subtitle" data-tolk="event-title">{interp.title}</p>}
        </div>
        <button type="button" className="tolk-icon-button" data-tolk="close-panel" aria-label="Close" onClick={store.closePanel}>×</button>
      </header>
      <div className="tolk-panel__body">
        {!loaded && <p className="tolk-help">Asking Tolk…</p>}
        {problem && <p className="tolk-error" role="alert" data-tolk="problem">{problem}</p>}
        <Booth />
        <Listener />
        <Moderator />
      </div>
    </div>
  );
}
