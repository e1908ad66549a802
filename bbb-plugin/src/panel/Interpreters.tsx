/*
 * A moderator names interpreters from the meeting's participants (as
 * BigBlueButton lists them) for some of the interpretation languages, and
 * removes them.
 */
import { useState, type FormEvent, type ReactElement } from 'react';
import type { Interpretation } from '../types';
import { useAction, useStore, useStoreObject } from '../view';
import { ErrorLine, LanguageTicks } from './common';

export function Interpreters({ interp }: { interp: Interpretation }): ReactElement {
  const store = useStoreObject();
  const { participants } = useStore();
  const [userId, setUserId] = useState('');
  const [languages, setLanguages] = useState<string[]>([]);
  const name = useAction(store.api.nameInterpreter.bind(store.api));
  const remove = useAction(store.api.removeInterpreter.bind(store.api));
  const named = interp.interpreters || [];
  const options = interp.languages.map((code) => ({ code, label: store.label(code) }));
  const who = participants.find((p) => p.userId === userId);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!who) return;
    if (await name.run(who.userId, { name: who.name, languages })) {
      setUserId('');
      setLanguages([]);
    }
  };

  return (
    <section className="tolk-subsection" data-tolk="interpreters" aria-labelledby="tolk-interpreters-title">
      <h4 id="tolk-interpreters-title" className="tolk-subsection__title">Interpreters</h4>
      {named.length ? (
        <ul className="tolk-list">
          {named.map((i) => (
            <li key={i.user_id} className="tolk-list__item" data-tolk="interpreter" data-user-id={i.user_id}>
              <span className="tolk-list__name">{i.name}</span>
              <span className="tolk-help">{i.languages.map(store.label).join(', ')}</span>
              <button type="button" className="tolk-button tolk-button--small" data-tolk="remove-interpreter"
                data-user-id={i.user_id} disabled={remove.busy} aria-label={`Remove ${i.name}`}
                onClick={() => void remove.run(i.user_id)}>Remove</button>
            </li>
          ))}
        </ul>
      ) : <p className="tolk-help">Nobody is named yet.</p>}
      <ErrorLine text={remove.error} tolk="remove-interpreter-error" />
      <form className="tolk-form" data-tolk="name-interpreter-form" onSubmit={(e) => void submit(e)}>
        <label className="tolk-field">
          <span>Name interpreter</span>
          <select data-tolk="interpreter-user" value={userId} onChange={(e) => setUserId(e.target.value)}>
            <option value="">Choose a participant…</option>
            {participants.map((p) => <option key={p.userId} value={p.userId}>{p.name}</option>)}
          </select>
        </label>
        <LanguageTicks options={options} chosen={languages} onChange={setLanguages} tolk="interpreter-language" />
        <button type="submit" className="tolk-button" data-tolk="name-interpreter"
          disabled={name.busy || !who || !languages.length}>
          {name.busy ? 'Naming…' : 'Name interpreter'}
        </button>
        <ErrorLine text={name.error} tolk="name-interpreter-error" />
      </form>
    </section>
  );
}
