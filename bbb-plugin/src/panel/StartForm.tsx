/*
 * A moderator's form to start the interpretation of the meeting: the floor
 * language, the interpretation languages, the expected listeners. Tolk's
 * 409 says what fits when capacity lacks; it is shown as it is.
 */
import { useEffect, useState, type FormEvent, type ReactElement } from 'react';
import type { LanguageName } from '../types';
import { useAction, useStoreObject } from '../view';
import { ErrorLine } from './common';

const DEFAULT_LISTENERS = 50;

export function StartForm(): ReactElement {
  const store = useStoreObject();
  const [names, setNames] = useState<LanguageName[] | null>(null);
  const [namesError, setNamesError] = useState('');
  const [floor, setFloor] = useState('en');
  const [languages, setLanguages] = useState<string[]>([]);
  const [adding, setAdding] = useState('');
  const [expected, setExpected] = useState(String(DEFAULT_LISTENERS));
  const start = useAction(store.api.startInterpretation.bind(store.api));

  useEffect(() => {
    store.api.languages().then(setNames, (err: Error) => setNamesError(err.message));
  }, [store]);

  const label = (code: string) => (names && names.find((n) => n.code === code)?.label) || code;
  const options = names || [];
  const addable = options.filter((n) => n.code !== floor && !languages.includes(n.code));

  const add = (code: string) => {
    const c = code.trim();
    if (c && c !== floor && !languages.includes(c)) setLanguages([...languages, c]);
    setAdding('');
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const count = Math.max(1, Math.round(Number(expected) || DEFAULT_LISTENERS));
    void start.run({ floor_language: floor, languages, expected_listeners: count });
  };

  return (
    <form className="tolk-form" data-tolk="start-form" onSubmit={submit}>
      <p className="tolk-text">No interpretation runs in this meeting.</p>
      <label className="tolk-field">
        <span>Floor language</span>
        {names ? (
          <select data-tolk="floor-language" value={floor} onChange={(e) => setFloor(e.target.value)}>
            {options.map((n) => <option key={n.code} value={n.code}>{n.label} ({n.code})</option>)}
          </select>
        ) : (
          <input data-tolk="floor-language" value={floor} onChange={(e) => setFloor(e.target.value)} />
        )}
        <span className="tolk-help">The language spoken in the meeting.</span>
      </label>
      <div className="tolk-field">
        <span>Interpretation languages</span>
        <ul className="tolk-chips" aria-label="Interpretation languages">
          {languages.map((code) => (
            <li key={code} className="tolk-chip" data-tolk="language-chip" data-language={code}>
              <span lang={code}>{label(code)}</span>
              <button type="button" className="tolk-chip__remove" data-tolk="remove-language" data-language={code}
                aria-label={`Remove ${label(code)}`} onClick={() => setLanguages(languages.filter((c) => c !== code))}>×</button>
            </li>
          ))}
          {!languages.length && <li className="tolk-help">None yet: add at least one.</li>}
        </ul>
        {names ? (
          <select data-tolk="add-language" aria-label="Add a language" value={adding} onChange={(e) => add(e.target.value)}>
            <option value="">Add a language…</option>
            {addable.map((n) => <option key={n.code} value={n.code}>{n.label} ({n.code})</option>)}
          </select>
        ) : (
          <span className="tolk-field__row">
            <input data-tolk="add-language" aria-label="Language code" placeholder="fr" value={adding}
              onChange={(e) => setAdding(e.target.value)} />
            <button type="button" className="tolk-button" onClick={() => add(adding)}>Add</button>
          </span>
        )}
        <ErrorLine text={namesError} tolk="languages-error" />
      </div>
      <label className="tolk-field">
        <span>Expected listeners</span>
        <input data-tolk="expected-listeners" type="number" min={1} step={1} value={expected}
          onChange={(e) => setExpected(e.target.value)} />
      </label>
      <button type="submit" className="tolk-button tolk-button--primary" data-tolk="start-interpretation"
        disabled={start.busy || !languages.length}>
        {start.busy ? 'Starting…' : 'Start interpretation'}
      </button>
      <ErrorLine text={start.error} tolk="start-error" />
    </form>
  );
}
