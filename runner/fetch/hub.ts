// The Hugging Face-compatible hub API: revision → commit sha, tree listing (with LFS sha256),
// and the resolve URL of a file. Downloads always use the commit sha, so a branch that moves
// during a download cannot mix two versions of a repository.

import { getJson, header } from './http.js';
import type { GetOptions } from './http.js';
import { FetchError, httpStatusError } from './errors.js';
import type { HubSource } from './source.js';
import { formatSource } from './source.js';
import { withRetries } from './retry.js';
import type { RetryPolicy } from './retry.js';
import type { Redactor } from './redact.js';

/** One file to download, with what its bytes must hash to. */
export interface RemoteFile {
  /** Where the file goes, relative to the output folder ('/'-separated). */
  readonly relPath: string;
  readonly url: string;
  /** Exact size in bytes when known (always for hub files). */
  readonly size: number | undefined;
  /** LFS files: the sha256 the hub recorded. */
  readonly sha256: string | undefined;
  /** Non-LFS hub files: the git blob sha1 (sha1 of "blob <size>\0" + content). */
  readonly gitSha1: string | undefined;
  /** A stable identity of the remote content (used to decide whether a partial file still applies). */
  readonly identity: string;
  /** Text shown to the user for this file. */
  readonly display: string;
}

export interface HubClientOptions {
  readonly endpoint: string;
  readonly token: string | undefined;
  readonly redact: Redactor;
  readonly stallMs: number;
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
}

interface TreeEntry {
  readonly type: string;
  readonly path: string;
  readonly size?: number;
  readonly oid?: string;
  readonly lfs?: { readonly oid?: string; readonly size?: number };
}

const SHA40 = /^[0-9a-f]{40}$/;

export class HubClient {
  readonly #o: HubClientOptions;

  constructor(options: HubClientOptions) {
    this.#o = { ...options, endpoint: options.endpoint.replace(/\/+$/, '') };
  }

  /** Headers for hub requests (the token, when there is one). */
  authHeaders(): Record<string, string> {
    return this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {};
  }

  #api(source: HubSource): string {
    return `${this.#o.endpoint}/api/${source.repoType === 'dataset' ? 'datasets' : 'models'}/${source.repo}`;
  }

  #authHint(): string {
    return this.#o.token
      ? 'the token in HF_TOKEN was rejected (expired or mistyped?)'
      : 'the repository needs a token: set HF_TOKEN to a token with read access';
  }

  async #json(url: string, what: string): Promise<{ json: unknown; next: string | undefined }> {
    const get: GetOptions = { headers: this.authHeaders(), stallMs: this.#o.stallMs, redact: this.#o.redact, ...(this.#o.signal ? { signal: this.#o.signal } : {}) };
    return withRetries(this.#o.retry, this.#o.signal, async () => {
      const res = await getJson(url, get);
      if (res.status !== 200) throw httpStatusError(res.status, what, this.#authHint());
      return { json: res.json, next: nextLink(header(res.headers, 'link'), url) };
    });
  }

  /** The commit sha a branch, tag or sha names. */
  async resolveCommit(source: HubSource): Promise<string> {
    const url = `${this.#api(source)}/revision/${encodeURIComponent(source.revision)}`;
    const what = `revision "${source.revision}" of ${source.repoType} repository ${source.repo}`;
    const { json } = await this.#json(url, what);
    const sha = (json as { sha?: unknown } | undefined)?.sha;
    if (typeof sha !== 'string' || !SHA40.test(sha)) {
      throw new FetchError('bad-response', `the hub gave no commit sha for ${what}`);
    }
    return sha;
  }

  async #tree(source: HubSource, commit: string, path: string, recursive: boolean): Promise<TreeEntry[]> {
    const encodedPath = path === '' ? '' : `/${encodePath(path)}`;
    let url: string | undefined = `${this.#api(source)}/tree/${commit}${encodedPath}${recursive ? '?recursive=true' : ''}`;
    const entries: TreeEntry[] = [];
    const what = `"${path === '' ? '/' : path}" in ${formatSource({ ...source, path: '' })} at ${commit.slice(0, 12)}`;
    while (url !== undefined) {
      const page: { json: unknown; next: string | undefined } = await this.#json(url, what);
      if (!Array.isArray(page.json)) throw new FetchError('bad-response', `the hub's tree listing of ${what} is not a list`);
      entries.push(...(page.json as TreeEntry[]));
      url = page.next;
    }
    return entries;
  }

  /** Every file the source names, at `commit`, with its checksums. */
  async listFiles(source: HubSource, commit: string): Promise<RemoteFile[]> {
    let entries: TreeEntry[];
    let base: string; // the folder the published relative paths start from
    if (source.path === '') {
      entries = await this.#tree(source, commit, '', true);
      base = '';
    } else {
      const slash = source.path.lastIndexOf('/');
      const parent = slash < 0 ? '' : source.path.slice(0, slash);
      const notFound = (): FetchError =>
        new FetchError('not-found', `404 Not Found: "${source.path}" does not exist in ${formatSource({ ...source, path: '' })} at commit ${commit.slice(0, 12)}`, { status: 404 });
      let siblings: TreeEntry[];
      try {
        siblings = await this.#tree(source, commit, parent, false);
      } catch (err) {
        throw err instanceof FetchError && err.code === 'not-found' ? notFound() : err;
      }
      const self = siblings.find((e) => e.path === source.path);
      if (self === undefined) {
        throw notFound();
      }
      if (self.type === 'directory') {
        entries = await this.#tree(source, commit, source.path, true);
        base = source.path;
      } else {
        entries = [self];
        base = parent;
      }
    }
    const files: RemoteFile[] = [];
    for (const e of entries) {
      if (e.type !== 'file') continue;
      const rel = base === '' ? e.path : e.path.slice(base.length + 1);
      if (rel === '' || rel.split('/').some((p) => p === '..' || p === '.' || p === '')) {
        throw new FetchError('bad-response', `the hub listed an unsafe path "${e.path}"`);
      }
      const lfsOid = e.lfs?.oid;
      const size = e.lfs?.size ?? e.size;
      if (typeof size !== 'number') throw new FetchError('bad-response', `the hub listed "${e.path}" without a size`);
      const sha256 = typeof lfsOid === 'string' ? lfsOid.replace(/^sha256:/, '').toLowerCase() : undefined;
      const gitSha1 = sha256 === undefined && typeof e.oid === 'string' ? e.oid.toLowerCase() : undefined;
      files.push({
        relPath: rel,
        url: this.resolveUrl(source, commit, e.path),
        size,
        sha256,
        gitSha1,
        // Content-addressed when the hub gives a checksum, so a partial file survives a new commit
        // that did not change this file.
        identity: sha256 !== undefined ? `sha256:${sha256}` : gitSha1 !== undefined ? `git-blob:${gitSha1}:${size}` : `url:${this.resolveUrl(source, commit, e.path)}`,
        display: e.path,
      });
    }
    return files;
  }

  /** `{endpoint}/[datasets/]{repo}/resolve/{commit}/{path}`. */
  resolveUrl(source: HubSource, commit: string, path: string): string {
    const prefix = source.repoType === 'dataset' ? 'datasets/' : '';
    return `${this.#o.endpoint}/${prefix}${source.repo}/resolve/${commit}/${encodePath(path)}`;
  }
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** The `rel="next"` target of an RFC 8288 Link header, resolved against the request URL. */
function nextLink(link: string | undefined, base: string): string | undefined {
  if (link === undefined) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;(.*)/.exec(part.trim());
    if (m && /rel="?next"?/.test(m[2] ?? '')) return new URL(m[1] ?? '', base).toString();
  }
  return undefined;
}
