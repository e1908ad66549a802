/*
 * The client of Tolk's plugin API ({tolk}/api/v1/bbb/…).
 *
 * This file owns: the participant's identity on every call (BigBlueButton's
 * session token in the X-Session-Token header, never in a URL, and the
 * browser's cookies with credentials: "include" so Tolk can ask bbb-web),
 * the URL of each call, and errors as sentences to show as they are: Tolk's
 * problem+json detail, or a sentence of our own for an answer without one
 * (401, 403, 404, 409). Network failures and problem+json parsing are
 * http.js's (shared with Tolk's pages).
 */
import { HttpError, problemFrom, request } from '../../relay/web/http.js';
import type {
  Interpretation, Interpreter, InterpreterRequest, LanguageName, Me, StartRequest,
} from './types';

// Sentences for answers that come without a detail of their own.
export const FALLBACK: Record<number, string> = {
  401: 'BigBlueButton does not know this session. Rejoin the meeting and try again.',
  403: 'Your role in this meeting does not allow this.',
  404: 'This meeting has no interpretation.',
  409: 'Tolk cannot take this interpretation now.',
};

export const NO_TOKEN = 'This meeting page has no BigBlueButton session token, so Tolk cannot tell who you are.';

export class TolkApi {
  constructor(
    readonly base: string, // {tolk}, ending in "/"
    private readonly token: () => string | undefined,
  ) {}

  url(path: string): string {
    return new URL(path, this.base).href;
  }

  // One call: the token header, the cookies, JSON both ways; rejects with
  // an HttpError whose message is the sentence to show.
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const token = this.token();
    if (!token) throw new HttpError(NO_TOKEN, { status: 401 });
    const headers: Record<string, string> = { Accept: 'application/json', 'X-Session-Token': token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res: Response = await request(this.url(path), {
      method,
      headers,
      credentials: 'include',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw await problemFrom(res, { fallback: FALLBACK, raw: true });
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  me(): Promise<Me> {
    return this.call('GET', 'api/v1/bbb/me');
  }

  startInterpretation(req: StartRequest): Promise<Interpretation> {
    return this.call('POST', 'api/v1/bbb/interpretation', req);
  }

  stopInterpretation(): Promise<void> {
    return this.call('DELETE', 'api/v1/bbb/interpretation');
  }

  nameInterpreter(userId: string, req: InterpreterRequest): Promise<Interpreter> {
    return this.call('PUT', `api/v1/bbb/interpretation/interpreters/${encodeURIComponent(userId)}`, req);
  }

  removeInterpreter(userId: string): Promise<void> {
    return this.call('DELETE', `api/v1/bbb/interpretation/interpreters/${encodeURIComponent(userId)}`);
  }

  boothLink(req: InterpreterRequest): Promise<{ url: string }> {
    return this.call('POST', 'api/v1/bbb/interpretation/booth-links', req);
  }

  myBooth(): Promise<{ url: string }> {
    return this.call('POST', 'api/v1/bbb/booth');
  }

  // The languages Tolk offers by name (public: no identity needed).
  async languages(): Promise<LanguageName[]> {
    const res: Response = await request(this.url('api/v1/languages'), { headers: { Accept: 'application/json' } });
    if (!res.ok) throw await problemFrom(res, { raw: true });
    return (await res.json()) as LanguageName[];
  }
}
