/*
 * Small pieces the panel's sections share: an error sentence next to the
 * button it belongs to, and languages to tick (who interprets what).
 */
import type { ReactElement } from 'react';

export function ErrorLine({ text, tolk }: { text: string; tolk: string }): ReactElement | null {
  if (!text) return null;
  return <p className="tolk-error" role="alert" data-tolk={tolk}>{text}</p>;
}

export interface LanguageOption {
  code: string;
  label: string;
}

// Checkboxes, one per language; `chosen` the ticked codes.
export function LanguageTicks({ options, chosen, onChange, tolk }: {
  options: LanguageOption[];
  chosen: string[];
  onChange: (codes: string[]) => void;
  tolk: string;
}): ReactElement {
  const toggle = (code: string, on: boolean) => {
    const rest = chosen.filter((c) => c !== code);
    onChange(on ? [...rest, code] : rest);
  };
  return (
    <div className="tolk-ticks" role="group" aria-label="Languages">
      {options.map((o) => (
        <label key={o.code} className="tolk-tick">
          <input
            type="checkbox"
            data-tolk={tolk}
            data-language={o.code}
            checked={chosen.includes(o.code)}
            onChange={(e) => toggle(o.code, e.target.checked)}
          />
          <span lang={o.code}>{o.label}</span>
        </label>
      ))}
    </div>
  );
}
