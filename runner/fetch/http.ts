// Minimal HTTP(S) GET on node:http with what a resumable downloader needs and fetch() hides:
// manual redirects (the Authorization header is dropped when a redirect leaves the origin, as the
// hub's LFS redirects go to a CDN), a timeout on the wait for headers, and the raw response
// stream so the caller can write each chunk at its file offset.

import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { FetchError } from './errors.js';
import type { Redactor } from './redact.js';

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32 });

const MAX_REDIRECTS = 8;

export interface GetOptions {
  readonly headers: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Milliseconds to wait for the response headers before the attempt counts as stalled. */
  readonly stallMs: number;
  readonly redact: Redactor;
  readonly method?: 'GET' | 'HEAD';
}

export interface OpenResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects. */
  readonly url: string;
  /** Headers of the first response in the redirect chain (the hub puts its metadata there). */
  readonly firstHeaders: IncomingHttpHeaders;
  readonly body: IncomingMessage;
}

/** One header's value as a single string (first value if repeated). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** GET `url`, following redirects; resolves once the final response's headers arrived. */
export async function openGet(url: string, options: GetOptions): Promise<OpenResponse> {
  let current = new URL(url);
  const origin = current.origin;
  let headers: Record<string, string> = { ...options.headers };
  let firstHeaders: IncomingHttpHeaders | undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await requestOnce(current, headers, options);
    firstHeaders ??= res.headers;
    const status = res.statusCode ?? 0;
    const location = header(res.headers, 'location');
    if (status >= 300 && status < 400 && status !== 304 && location !== undefined) {
      res.resume(); // discard the redirect body, free the socket
      current = new URL(location, current);
      if (current.origin !== origin) {
        // Never hand the hub token to another host.
        const { authorization: _drop, Authorization: _drop2, ...rest } = headers;
        headers = rest;
      }
      continue;
    }
    return { status, headers: res.headers, url: current.toString(), firstHeaders, body: res };
  }
  throw new FetchError('bad-response', `more than ${MAX_REDIRECTS} redirects for ${options.redact(url)}`);
}

function requestOnce(url: URL, headers: Record<string, string>, options: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new FetchError('aborted', 'download aborted'));
      return;
    }
    const isHttps = url.protocol === 'https:';
    const req = (isHttps ? https : http).request(url, {
      method: options.method ?? 'GET',
      headers: { 'user-agent': 'cfpipe-fetch', ...headers },
      agent: isHttps ? httpsAgent : httpAgent,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const timer = setTimeout(() => {
      req.destroy(new FetchError('stalled', `no response from ${options.redact(url.host)} within ${options.stallMs} ms`, { retryable: true }));
    }, options.stallMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('error', (err: Error) => {
      clearTimeout(timer);
      reject(toFetchError(err, url, options));
    });
    req.end();
  });
}

/** Map a socket-level error to a FetchError whose message carries no secret. */
export function toFetchError(err: unknown, url: URL | string, options: { signal?: AbortSignal; redact: Redactor }): FetchError {
  if (err instanceof FetchError) return err;
  if (options.signal?.aborted) return new FetchError('aborted', 'download aborted');
  const e = err as NodeJS.ErrnoException;
  const where = options.redact(typeof url === 'string' ? url : url.host);
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED') return new FetchError('network', `connection refused by ${where}`, { retryable: true });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new FetchError('network', `cannot resolve host ${where}`, { retryable: true });
  return new FetchError('network', `network error from ${where}: ${options.redact(e.message ?? String(err))}`, { retryable: true });
}

/** GET a JSON document (hub API). Non-2xx statuses are returned, not thrown. */
export async function getJson(url: string, options: GetOptions): Promise<{ status: number; headers: IncomingHttpHeaders; json: unknown }> {
  const res = await openGet(url, options);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 256 * 1024 * 1024) throw new FetchError('bad-response', `API answer from ${options.redact(url)} is larger than 256 MiB`);
      chunks.push(chunk);
    }
  } catch (err) {
    throw toFetchError(err, url, options);
  }
  if (res.status < 200 || res.status >= 300) return { status: res.status, headers: res.headers, json: undefined };
  try {
    return { status: res.status, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    throw new FetchError('bad-response', `the hub answered ${options.redact(url)} with something that is not JSON`, { retryable: true });
  }
}
