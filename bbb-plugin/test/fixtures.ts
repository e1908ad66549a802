// Answers of GET /api/v1/bbb/me for the tests: a viewer, an interpreter, a moderator.
import type { Interpretation, Me } from '../src/types';

export function interpretation(patch: Partial<Interpretation> = {}): Interpretation {
  return {
    event: 'ev1',
    title: 'Board meeting',
    floor_language: 'en',
    languages: ['fr', 'de'],
    channels: {
      event: { id: 'ev1', title: 'Board meeting' },
      channels: [
        { language: 'en', kind: 'floor', label: 'English', speaking: 'floor' },
        { language: 'fr', kind: 'interpretation', label: 'Français', speaking: 'interpreter', interpreter: 'Ana' },
        { language: 'de', kind: 'interpretation', label: 'Deutsch', speaking: 'floor' },
      ],
    },
    whep: 'whep/ev1/',
    my_languages: [],
    ...patch,
  };
}

export function me(role: 'viewer' | 'interpreter' | 'moderator', interp: Interpretation | null = interpretation()): Me {
  const i = interp && role === 'interpreter' ? { ...interp, my_languages: ['fr'] } : interp;
  return {
    meeting: { id: 'm-internal', external_id: 'board' },
    user: { id: 'w_1', name: 'Kim', moderator: role === 'moderator' },
    interpretation: i,
  };
}
