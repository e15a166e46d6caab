// A real HTTP server on 127.0.0.1 that speaks the Hugging Face hub's API for listing and resolving
// files (revision, tree with LFS oids, resolve with redirects to a separate "CDN" origin for LFS
// files), with faults injected per request. Used by the fetch tests and the fetch benchmark.

import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';

export interface RepoFile {
  readonly path: string;
  readonly content: Buffer;
  /** Stored through LFS: listed with an lfs.oid (sha256), resolved by a redirect to the CDN. */
  readonly lfs: boolean;
}

export interface Repo {
  readonly type: 'model' | 'dataset';
  /** owner/name */
  readonly id: string;
  /** public: anyone; private: needs the server token (401 otherwise); gated: 401 without a token, 403 with one. */
  readonly access: 'public' | 'private' | 'gated';
  /** branch or tag → commit sha */
  readonly refs: Record<string, string>;
  /** commit sha → files */
  readonly commits: Record<string, readonly RepoFile[]>;
}

export type Fault =
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'drop'; readonly afterBytes: number }
  | { readonly kind: 'stall'; readonly afterBytes: number }
  | { readonly kind: 'corrupt'; readonly at: number }
  | { readonly kind: 'ignore-range' }
  | { readonly kind: 'throttle'; readonly bytesPerTick: number; readonly tickMs: number };

export interface FaultRule {
  /** Applies to requests whose path contains this text (and whose kind matches, when given). */
  readonly pathIncludes: string;
  readonly on?: LoggedRequest['kind'];
  readonly fault: Fault;
  /** How many matching requests get the fault (Infinity for all). */
  times: number;
}

export interface LoggedRequest {
  readonly kind: 'api' | 'resolve' | 'cdn';
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
  status: number;
  /** Body bytes handed to the socket. */
  bytesSent: number;
  fault: Fault['kind'] | undefined;
}

export const gitBlobSha1 = (content: Buffer): string =>
  createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
export const sha256Hex = (content: Buffer): string => createHash('sha256').update(content).digest('hex');

/** Deterministic pseudo-random bytes (xorshift), so tests need no fixture files. */
export function bytesOf(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export class HubServer {
  readonly requests: LoggedRequest[] = [];
  readonly faults: FaultRule[] = [];
  /** Listing page size of the tree API (Link rel="next" pagination). */
  pageSize = 1000;
  /** Most file transfers (resolve + cdn) in flight at once, to observe parallel downloads. */
  maxInFlight = 0;
  #inFlight = 0;
  #hub = http.createServer((req, res) => this.#onHub(req, res));
  #cdn = http.createServer((req, res) => this.#onCdn(req, res));
  #repos: Repo[];
  #token: string | undefined;
  #lfsBlobs = new Map<string, Buffer>();
  url = '';
  cdnUrl = '';

  private constructor(repos: Repo[], token: string | undefined) {
    this.#repos = repos;
    this.#token = token;
    for (const r of repos) for (const files of Object.values(r.commits)) for (const f of files) if (f.lfs) this.#lfsBlobs.set(sha256Hex(f.content), f.content);
  }

  static async start(repos: Repo[], options: { token?: string } = {}): Promise<HubServer> {
    const s = new HubServer(repos, options.token);
    s.url = await listen(s.#hub);
    s.cdnUrl = await listen(s.#cdn);
    return s;
  }

  async close(): Promise<void> {
    for (const server of [this.#hub, this.#cdn]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  addFault(rule: FaultRule): void {
    this.faults.push(rule);
  }

  /** Requests of one kind whose path contains `text`. */
  requestsFor(text: string, kind?: LoggedRequest['kind']): LoggedRequest[] {
    return this.requests.filter((r) => r.path.includes(text) && (kind === undefined || r.kind === kind));
  }

  #takeFault(log: LoggedRequest): Fault | undefined {
    const rule = this.faults.find((f) => f.times > 0 && log.path.includes(f.pathIncludes) && (f.on === undefined || f.on === log.kind));
    if (rule === undefined) return undefined;
    rule.times--;
    log.fault = rule.fault.kind;
    return rule.fault;
  }

  #log(kind: LoggedRequest['kind'], req: IncomingMessage, res: ServerResponse): LoggedRequest {
    const log: LoggedRequest = {
      kind,
      method: req.method ?? 'GET',
      path: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytesSent: 0,
      fault: undefined,
    };
    this.requests.push(log);
    if (kind !== 'api') {
      this.#inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
      res.once('close', () => this.#inFlight--);
    }
    return log;
  }

  #onHub(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const path = decodeURIComponent(url.pathname);
    const isApi = path.startsWith('/api/');
    const log = this.#log(isApi ? 'api' : 'resolve', req, res);
    const fault = this.#takeFault(log);
    if (fault?.kind === 'status') return end(res, log, fault.status, { error: `injected ${fault.status}` });

    let m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)(?:\/(.*))?$/.exec(url.pathname);
    if (m) {
      const repo = this.#repo(m[1] === 'datasets' ? 'dataset' : 'model', m[2] ?? '');
      const denied = this.#deny(repo, req);
      if (denied !== undefined) return end(res, log, denied, { error: 'Repository not found or access denied' });
      const commit = repo && this.#commitOf(repo, decodeURIComponent(m[4] ?? ''));
      if (!repo || !commit) return end(res, log, 404, { error: 'Revision Not Found' });
      const files = repo.commits[commit] ?? [];
      if (m[3] === 'revision') {
        return end(res, log, 200, { id: repo.id, sha: commit, siblings: files.map((f) => ({ rfilename: f.path })) });
      }
      const dir = m[5] === undefined ? '' : decodeURIComponent(m[5]).replace(/\/$/, '');
      const entries = treeEntries(files, dir, url.searchParams.get('recursive') === 'true');
      if (entries === undefined) return end(res, log, 404, { error: 'Entry not found' });
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = entries.slice(cursor, cursor + this.pageSize);
      if (cursor + this.pageSize < entries.length) {
        const next = new URL(url);
        next.searchParams.set('cursor', String(cursor + this.pageSize));
        res.setHeader('link', `<${next.toString()}>; rel="next"`);
      }
      return end(res, log, 200, page);
    }

    m = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      const repo = this.#repo(m[1] ? 'dataset' : 'model', m[2] ?? '');
      const denied = this.#deny(repo, req);
      if (denied !== undefined) return end(res, log, denied, { error: 'Repository not found or access denied' });
      const commit = repo && this.#commitOf(repo, decodeURIComponent(m[3] ?? ''));
      const filePath = decodeURIComponent(m[4] ?? '');
      const file = commit ? repo?.commits[commit]?.find((f) => f.path === filePath) : undefined;
      if (!repo || !commit || !file) return end(res, log, 404, { error: 'Entry not found' });
      res.setHeader('x-repo-commit', commit);
      if (file.lfs) {
        const oid = sha256Hex(file.content);
        res.setHeader('x-linked-etag', `"${oid}"`);
        res.setHeader('x-linked-size', String(file.content.length));
        res.setHeader('etag', `"${oid}"`);
        res.setHeader('location', `${this.cdnUrl}/lfs/${oid}?name=${encodeURIComponent(filePath)}`);
        return end(res, log, 302, undefined);
      }
      res.setHeader('etag', `"${gitBlobSha1(file.content)}"`);
      return serveBytes(req, res, log, file.content, fault);
    }
    end(res, log, 404, { error: 'Not found' });
  }

  #onCdn(req: IncomingMessage, res: ServerResponse): void {
    const log = this.#log('cdn', req, res);
    const fault = this.#takeFault(log);
    if (fault?.kind === 'status') return end(res, log, fault.status, { error: `injected ${fault.status}` });
    const m = /^\/lfs\/([0-9a-f]{64})/.exec(req.url ?? '');
    const blob = m ? this.#lfsBlobs.get(m[1] ?? '') : undefined;
    if (!m || !blob) return end(res, log, 404, { error: 'NoSuchKey' });
    res.setHeader('etag', `"${m[1]}"`);
    serveBytes(req, res, log, blob, fault);
  }

  #repo(type: Repo['type'], id: string): Repo | undefined {
    return this.#repos.find((r) => r.type === type && r.id === id);
  }

  #commitOf(repo: Repo, rev: string): string | undefined {
    if (repo.commits[rev]) return rev;
    return repo.refs[rev];
  }

  #deny(repo: Repo | undefined, req: IncomingMessage): number | undefined {
    if (!repo || repo.access === 'public') return undefined;
    const ok = this.#token !== undefined && req.headers.authorization === `Bearer ${this.#token}`;
    if (!ok) return 401;
    return repo.access === 'gated' ? 403 : undefined;
  }
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function end(res: ServerResponse, log: LoggedRequest, status: number, json: unknown): void {
  log.status = status;
  res.statusCode = status;
  if (json === undefined) {
    res.end();
    return;
  }
  const body = Buffer.from(JSON.stringify(json));
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', body.length);
  log.bytesSent += body.length;
  res.end(body);
}

/** Entries the tree API lists under `dir` (undefined when `dir` is not a folder). */
function treeEntries(files: readonly RepoFile[], dir: string, recursive: boolean): object[] | undefined {
  const prefix = dir === '' ? '' : `${dir}/`;
  const under = files.filter((f) => f.path.startsWith(prefix));
  if (dir !== '' && under.length === 0) return undefined;
  const out: object[] = [];
  const dirs = new Set<string>();
  for (const f of under) {
    const rest = f.path.slice(prefix.length);
    const parts = rest.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (!recursive && i > 1) break;
      dirs.add(prefix + parts.slice(0, i).join('/'));
    }
    if (!recursive && parts.length > 1) continue;
    const oid = gitBlobSha1(f.lfs ? Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256Hex(f.content)}\nsize ${f.content.length}\n`) : f.content);
    out.push({
      type: 'file',
      oid,
      size: f.content.length,
      path: f.path,
      ...(f.lfs ? { lfs: { oid: sha256Hex(f.content), size: f.content.length, pointerSize: 134 } } : {}),
    });
  }
  for (const d of [...dirs].sort()) out.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
  return out;
}

/** Send `content` honouring Range and If-Range, with the request's fault applied. */
function serveBytes(req: IncomingMessage, res: ServerResponse, log: LoggedRequest, content: Buffer, fault: Fault | undefined): void {
  let start = 0;
  let status = 200;
  const etag = res.getHeader('etag');
  const range = req.headers.range;
  const ifRange = req.headers['if-range'];
  const rangeApplies = range !== undefined && fault?.kind !== 'ignore-range' && (ifRange === undefined || ifRange === etag);
  if (rangeApplies) {
    const m = /^bytes=(\d+)-$/.exec(range);
    if (!m) return end(res, log, 400, { error: 'unsupported range' });
    start = Number(m[1]);
    if (start >= content.length) {
      res.setHeader('content-range', `bytes */${content.length}`);
      return end(res, log, 416, undefined);
    }
    status = 206;
    res.setHeader('content-range', `bytes ${start}-${content.length - 1}/${content.length}`);
  }
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('content-length', content.length - start);
  res.setHeader('content-type', 'application/octet-stream');
  res.statusCode = status;
  log.status = status;
  let body = content.subarray(start);
  if (fault?.kind === 'corrupt' && fault.at >= start && fault.at < content.length) {
    body = Buffer.from(body);
    const i = fault.at - start;
    body[i] = (body[i] ?? 0) ^ 0xff;
  }
  const limit = fault?.kind === 'drop' || fault?.kind === 'stall' ? Math.min(fault.afterBytes, body.length) : body.length;
  const piece = fault?.kind === 'throttle' ? fault.bytesPerTick : 256 * 1024;
  const tickMs = fault?.kind === 'throttle' ? fault.tickMs : 0;
  let offset = 0;
  const finish = (): void => {
    // Drop only once the bytes before the cut reached the kernel, so the client really gets them.
    if (fault?.kind === 'drop') res.write(Buffer.alloc(0), () => res.socket?.destroy());
    else if (fault?.kind === 'stall') res.flushHeaders(); // keep the socket open, send nothing more
    else res.end();
  };
  const pump = (): void => {
    while (offset < limit) {
      if (res.destroyed) return;
      const chunk = body.subarray(offset, Math.min(limit, offset + piece));
      offset += chunk.length;
      log.bytesSent += chunk.length;
      const more = res.write(chunk);
      if (tickMs > 0) {
        setTimeout(pump, tickMs);
        return;
      }
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    finish();
  };
  if (limit === 0) {
    res.flushHeaders();
    finish();
  } else pump();
}
