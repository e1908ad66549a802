/*
 * A moderator's view of the running interpretation: the floor's state, each
 * channel with who is on air and its listeners, the interpreters, a booth
 * link for an interpreter outside the meeting, and "Stop interpretation"
 * (asked twice).
 */
import { useState, type ReactElement } from 'react';
import type { Interpretation } from '../types';
import { useAction, useStoreObject } from '../view';
import { ErrorLine } from './common';
import { Interpreters } from './Interpreters';
import { BoothLink } from './BoothLink';

const FLOOR_TEXT: Record<string, string> = {
  waiting: 'Waiting for the meeting audio',
  joining: 'Joining the meeting audio…',
  live: 'Live',
  error: 'Cannot hear the meeting',
  ended: 'Ended',
};

export function Running({ interp }: { interp: Interpretation }): ReactElement {
  const store = useStoreObject();
  const [confirming, setConfirming] = useState(false);
  const stop = useAction(store.api.stopInterpretation.bind(store.api));
  const listeners = interp.listeners || {};
  const floor = interp.floor;
  const channels = interp.channels.channels;
  const total = Object.values(listeners).reduce((a, b) => a + (Number(b) || 0), 0);

  return (
    <div data-tolk="running">
      <p className="tolk-floor" data-tolk="floor-state" data-state={floor ? floor.state : 'unknown'}>
        <span className="tolk-dot" aria-hidden="true" />
        <span>Floor: {floor ? FLOOR_TEXT[floor.state] || floor.state : 'not reported'}</span>
        {floor && floor.detail && <span className="tolk-help tolk-floor__detail">{floor.detail}</span>}
      </p>
      <table className="tolk-table" data-tolk="channels-table">
        <caption className="tolk-sr">Channels</caption>
        <thead>
          <tr><th scope="col">Channel</th><th scope="col">On air</th><th scope="col" className="tolk-num">Listeners</th></tr>
        </thead>
        <tbody>
          {channels.map((ch) => (
            <tr key={ch.language} data-tolk="channel-row" data-language={ch.language}>
              <th scope="row"><span lang={ch.language}>{ch.label || ch.language}</span>{ch.kind === 'floor' && <span className="tolk-tag">floor</span>}</th>
              <td data-tolk="on-air">{ch.kind === 'floor' ? '—' : ch.speaking === 'interpreter' ? (ch.interpreter || 'Interpreter') : 'Nobody'}</td>
              <td className="tolk-num" data-tolk="listeners">{listeners[ch.language] ?? 0}</td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr><th scope="row">All</th><td /><td className="tolk-num" data-tolk="listeners-total">{total}</td></tr>
        </tfoot>
      </table>
      <Interpreters interp={interp} />
      <BoothLink interp={interp} />
      <div className="tolk-stop">
        {confirming ? (
          <>
            <span className="tolk-text">Stop the interpretation for everyone?</span>
            <button type="button" className="tolk-button tolk-button--danger" data-tolk="confirm-stop" disabled={stop.busy}
              onClick={() => void stop.run().then(() => setConfirming(false))}>
              {stop.busy ? 'Stopping…' : 'Yes, stop'}
            </button>
            <button type="button" className="tolk-button" data-tolk="cancel-stop" onClick={() => setConfirming(false)}>Cancel</button>
          </>
        ) : (
          <button type="button" className="tolk-button tolk-button--danger" data-tolk="stop-interpretation" onClick={() => setConfirming(true)}>
            Stop interpretation
          </button>
        )}
      </div>
      <ErrorLine text={stop.error} tolk="stop-error" />
    </div>
  );
}
