/**
 * The HTTP transport: one request to the sidecar, its credential, its
 * timeout, and Kavach's error bodies turned into {@link KavachError}. Only
 * `fetch`, `URL`, `Headers` and `AbortController`: it runs in Node 20+,
 * browsers and edge runtimes. It never logs, and never puts a key or a
 * token in an error message.
 */
import { ClientCodes, KavachError } from './errors.js';

/** How the transport reaches the sidecar. */
export interface TransportOptions {
  url: string | URL;
  apiKey?: string | undefined;
  fetch?: typeof fetch | undefined;
  headers?: Record<string, string> | undefined;
  timeoutMs?: number | undefined;
  pageSize?: number | undefined;
}

/** A query parameter's value; undefined ones are left out. */
export type QueryValue = string | number | Date | undefined;

/** One call to the API. */
export interface Call {
  method: 'GET' | 'POST' | 'PATCH';
  /** The path, each ID already encoded (see {@link seg}). */
  path: string;
  query?: Record<string, QueryValue>;
  /** Sent as JSON when present. */
  body?: unknown;
  /** An agent's token, sent in `Kavach-Agent-Token` beside the key. */
  agentToken?: string;
  /** Replaces the key as the bearer credential (an agent asking for itself). */
  bearer?: string;
}

/** Header of the agent's token when the app asks for that agent's decision. */
export const agentTokenHeader = 'Kavach-Agent-Token';

/**
 * Encodes one path segment (an ID). An ID of `.` or `..` is refused: URLs
 * resolve such a segment (even encoded, `%2E%2E`) as a path step, so
 * `agent.revoke('..')` would reach another route.
 */
export function seg(id: string): string {
  if (id === '.' || id === '..') {
    throw new KavachError(ClientCodes.invalidId, 0, `"${id}" is not an ID`);
  }
  return encodeURIComponent(id);
}

/** Sends calls to one sidecar. */
export class Transport {
  readonly #base: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  /** Items per page when a method fetches every page. */
  readonly pageSize: number | undefined;

  constructor(o: TransportOptions) {
    this.#base = String(o.url).replace(/\/+$/, '');
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(this.#base)) {
      // fetch refuses such a URL with an error that repeats it, password and all.
      throw new TypeError('createKavach: the url must not hold user:password; send the API key as apiKey');
    }
    this.#apiKey = o.apiKey;
    // Bound to globalThis: some runtimes refuse fetch called on another this.
    this.#fetch = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#headers = { ...o.headers };
    this.#timeoutMs = o.timeoutMs ?? 30_000;
    this.pageSize = o.pageSize;
  }

  /** Whether an API key was given. */
  get hasKey(): boolean {
    return this.#apiKey !== undefined && this.#apiKey !== '';
  }

  /** Sends call and parses the JSON answer. */
  async json<T>(call: Call): Promise<T> {
    const text = await this.text(call);
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new KavachError(ClientCodes.badResponse, 200, `${call.method} ${call.path}: the answer is not JSON`, { cause });
    }
  }

  /** Sends call and returns the answer's body as text. */
  async text(call: Call): Promise<string> {
    const headers = new Headers(this.#headers);
    headers.set('Accept', 'application/json');
    const bearer = call.bearer ?? this.#apiKey;
    if (bearer !== undefined && bearer !== '') {
      headers.set('Authorization', `Bearer ${bearer}`);
    }
    if (call.agentToken !== undefined) {
      headers.set(agentTokenHeader, call.agentToken);
    }
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers.set('Content-Type', 'application/json');
    }
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, this.#timeoutMs);
    const what = `${call.method} ${call.path}`;
    try {
      let res: Response;
      try {
        res = await this.#fetch(this.#url(call), { method: call.method, headers, body, signal: ctl.signal });
      } catch (cause) {
        throw noAnswer(what, timedOut, this.#timeoutMs, cause);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (cause) {
        throw noAnswer(what, timedOut, this.#timeoutMs, cause);
      }
      if (!res.ok) {
        throw apiError(what, res.status, text);
      }
      return text;
    } finally {
      clearTimeout(timer);
    }
  }

  #url(call: Call): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) {
      if (v !== undefined) {
        params.set(k, v instanceof Date ? v.toISOString() : String(v));
      }
    }
    const q = params.toString();
    return `${this.#base}${call.path}${q === '' ? '' : `?${q}`}`;
  }
}

function noAnswer(what: string, timedOut: boolean, timeoutMs: number, cause: unknown): KavachError {
  if (timedOut) {
    return new KavachError(ClientCodes.timeout, 0, `${what}: no answer within ${timeoutMs} ms`, { cause });
  }
  const why = cause instanceof Error ? cause.message : String(cause);
  return new KavachError(ClientCodes.network, 0, `${what}: ${why}`, { cause });
}

/** Turns an error answer into a KavachError: Kavach's `{error: {code, message}}`, or the raw text. */
function apiError(what: string, status: number, text: string): KavachError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const err = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : undefined;
  if (err !== undefined && typeof err.code === 'string' && err.code !== '') {
    const { code, message, ...rest } = err;
    const details = Object.keys(rest).length > 0 ? rest : undefined;
    return new KavachError(code, status, typeof message === 'string' ? message : what, details === undefined ? undefined : { details });
  }
  const body = text.trim().slice(0, 200);
  return new KavachError(ClientCodes.http, status, `${what}: HTTP ${status}${body === '' ? '' : `: ${body}`}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
