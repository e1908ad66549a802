/*
 * The listener's section: Original and every interpretation channel (its
 * name and who is on air), the "Original volume" slider and the status line.
 */
import type { ReactElement } from 'react';
import { channelsOffered, onAirText, ORIGINAL } from '../choice';
import { useStore, useStoreObject } from '../view';

export function Listener(): ReactElement | null {
  const store = useStoreObject();
  const { me, choice, original, status } = useStore();
  const interp = me && me.interpretation;
  if (!interp) return null;
  const channels = channelsOffered(interp);
  return (
    <section className="tolk-section" data-tolk="listener" aria-labelledby="tolk-listen-title">
      <h3 id="tolk-listen-title" className="tolk-section__title">Listen to</h3>
      <div className="tolk-choices" role="group" aria-label="Listen to">
        <button
          type="button"
          className="tolk-choice"
          data-tolk="choice"
          data-language="original"
          aria-pressed={choice === null}
          onClick={() => store.choose(null)}
        >
          <span className="tolk-choice__label">{ORIGINAL}</span>
          <span className="tolk-choice__meta">The meeting as it sounds</span>
        </button>
        {channels.map((ch) => (
          <button
            key={ch.language}
            type="button"
            className="tolk-choice"
            data-tolk="choice"
            data-language={ch.language}
            data-on-air={ch.speaking === 'interpreter' ? 'interpreter' : 'floor'}
            aria-pressed={choice === ch.language}
            onClick={() => store.choose(ch.language)}
          >
            <span className="tolk-choice__label" lang={ch.language}>{ch.label || ch.language}</span>
            <span className="tolk-choice__meta">
              {ch.speaking === 'interpreter' && <span className="tolk-dot" aria-hidden="true" />}
              {onAirText(ch)}
            </span>
          </button>
        ))}
      </div>
      <label className="tolk-field" htmlFor="tolk-original-volume">
        <span className="tolk-field__row">
          <span>Original volume</span>
          <output data-tolk="original-volume-value" htmlFor="tolk-original-volume">{original} %</output>
        </span>
        <input
          id="tolk-original-volume"
          data-tolk="original-volume"
          type="range"
          min={0}
          max={100}
          step={1}
          value={original}
          aria-valuetext={`${original} percent`}
          onChange={(e) => store.setOriginal(Number(e.target.value))}
        />
        <span className="tolk-help">How loud the meeting stays under an interpretation.</span>
      </label>
      <p className="tolk-status" data-tolk="status" data-state={status.state} role="status" aria-live="polite">
        {status.text || (choice === null ? 'You hear the meeting as it sounds.' : '')}
      </p>
    </section>
  );
}
