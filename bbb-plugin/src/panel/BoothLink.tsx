/*
 * A booth link for an interpreter outside the meeting: a name and languages
 * in, Tolk's booth address out, with a copy button.
 */
import { useState, type FormEvent, type ReactElement } from 'react';
import type { Interpretation } from '../types';
import { useStoreObject } from '../view';
import { ErrorLine, LanguageTicks } from './common';

export function BoothLink({ interp }: { interp: Interpretation }): ReactElement {
  const store = useStoreObject();
  const [name, setName] = useState('External interpreter');
  const [languages, setLanguages] = useState<string[]>([]);
  const [url, setUrl] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [copied, setCopied] = useState(false);
  const options = interp.languages.map((code) => ({ code, label: store.label(code) }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    setCopied(false);
    try {
      setUrl((await store.api.boothLink({ name: name.trim(), languages })).url);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
    } catch (_) {
      setError('The browser did not let the plugin copy: select the address and copy it yourself.');
    }
  };

  return (
    <section className="tolk-subsection" data-tolk="booth-link" aria-labelledby="tolk-booth-link-title">
      <h4 id="tolk-booth-link-title" className="tolk-subsection__title">Booth link for an external interpreter</h4>
      <form className="tolk-form" onSubmit={(e) => void submit(e)}>
        <label className="tolk-field">
          <span>Interpreter's name</span>
          <input data-tolk="booth-link-name" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <LanguageTicks options={options} chosen={languages} onChange={setLanguages} tolk="booth-link-language" />
        <button type="submit" className="tolk-button" data-tolk="create-booth-link" disabled={busy || !name.trim() || !languages.length}>
          {busy ? 'Creating…' : 'Create booth link'}
        </button>
      </form>
      {url && (
        <div className="tolk-field__row tolk-copy">
          <input data-tolk="booth-link-url" readOnly value={url} aria-label="Booth link" onFocus={(e) => e.target.select()} />
          <button type="button" className="tolk-button" data-tolk="copy-booth-link" onClick={() => void copy()}>
            {copied ? 'Copied' : 'Copy'}
          </button>
        </div>
      )}
      <ErrorLine text={error} tolk="booth-link-error" />
    </section>
  );
}
