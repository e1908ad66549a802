import { afterEach, describe, expect, it, vi } from 'vitest';
import { FALLBACK, NO_TOKEN, TolkApi } from '../src/api';

type Call = { url: string; init: RequestInit };

function answering(...responses: (Response | Error)[]) {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const next = responses.shift();
    if (!next) throw new Error('no more answers');
    if (next instanceof Error) throw next;
    return next;
  });
  return calls;
}

const problem = (status: number, detail?: string) => new Response(
  detail === undefined ? '' : JSON.stringify({ type: 'about:blank', status, detail }),
  { status, headers: { 'Content-Type': detail === undefined ? 'text/plain' : 'application/problem+json' } },
);

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), {
  status, headers: { 'Content-Type': 'application/json' },
});

afterEach(() => vi.unstubAllGlobals());

describe("Tolk's plugin API client", () => {
  const api = new TolkApi('https://tolk.example/prefix/', () => 'tok-123');

  it('sends the session token in a header with the cookies, never in the URL', async () => {
    const calls = answering(json(200, { meeting: {}, user: {}, interpretation: null }));
    await api.me();
    expect(calls[0].url).toBe('https://tolk.example/prefix/api/v1/bbb/me');
    expect(calls[0].url).not.toContain('tok-123');
    expect((calls[0].init.headers as Record<string, string>)['X-Session-Token']).toBe('tok-123');
    expect(calls[0].init.credentials).toBe('include');
  });

  it('sends JSON bodies and takes 204 as done', async () => {
    const calls = answering(json(201, { event: 'e' }), new Response(null, { status: 204 }));
    await api.startInterpretation({ floor_language: 'en', languages: ['fr'], expected_listeners: 50 });
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ floor_language: 'en', languages: ['fr'], expected_listeners: 50 });
    expect(await api.removeInterpreter('w/1 2')).toBeUndefined();
    expect(calls[1].url).toBe('https://tolk.example/prefix/api/v1/bbb/interpretation/interpreters/w%2F1%202');
    expect(calls[1].init.method).toBe('DELETE');
  });

  it("shows Tolk's detail as it is (409: what fits)", async () => {
    answering(problem(409, 'Only 30 listeners fit now; ask for 30 or fewer'));
    await expect(api.startInterpretation({ floor_language: 'en', languages: ['fr'], expected_listeners: 50 }))
      .rejects.toMatchObject({ status: 409, message: 'Only 30 listeners fit now; ask for 30 or fewer' });
  });

  it('has a sentence of its own for answers without a detail', async () => {
    answering(problem(401), problem(403), problem(404));
    await expect(api.me()).rejects.toMatchObject({ status: 401, message: FALLBACK[401] });
    await expect(api.stopInterpretation()).rejects.toMatchObject({ status: 403, message: FALLBACK[403] });
    await expect(api.myBooth()).rejects.toMatchObject({ status: 404, message: FALLBACK[404] });
  });

  it('says Tolk cannot be reached when the network fails', async () => {
    answering(new TypeError('Failed to fetch'));
    await expect(api.me()).rejects.toMatchObject({ network: true, message: 'Cannot reach the Tolk server.' });
  });

  it('does not call Tolk without a session token', async () => {
    const calls = answering();
    const anonymous = new TolkApi('https://tolk.example/', () => undefined);
    await expect(anonymous.me()).rejects.toMatchObject({ status: 401, message: NO_TOKEN });
    expect(calls).toEqual([]);
  });

  it('asks for the languages without the token (a public list)', async () => {
    const calls = answering(json(200, [{ code: 'fr', label: 'Français' }]));
    expect(await api.languages()).toEqual([{ code: 'fr', label: 'Français' }]);
    expect(calls[0].url).toBe('https://tolk.example/prefix/api/v1/languages');
    expect(calls[0].init.headers).not.toHaveProperty('X-Session-Token');
  });
});
