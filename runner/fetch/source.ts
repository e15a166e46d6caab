// What a fetch stage can name as a source, parsed into a value (parse errors are values too).
//
//   hf://owner/repo[@rev][/path]            a model repository, one file or a folder, or all of it
//   hf://models/owner/repo[@rev][/path]     the same, explicit
//   hf://datasets/owner/repo[@rev][/path]   a dataset repository
//   https://host/path  (http:// too)        one plain file
//   file:///absolute/path                    a local file or folder (RFC 8089; file://localhost/… too)
//   file:relative/path                       a local file or folder, relative to the project root
//                                            (the folder holding .cfpipe/), as npm's `file:` specs
//
// The revision follows the Hugging Face `hf://` convention: `@` after the repository name, with a
// slash inside the revision written as %2F (`@refs%2Fpr%2F3`). No revision means `main`.

export type RepoType = 'model' | 'dataset';

export interface HubSource {
  readonly kind: 'hub';
  readonly repoType: RepoType;
  /** `owner/name`. */
  readonly repo: string;
  /** Branch, tag or commit as written; resolved to a commit sha before anything is downloaded. */
  readonly revision: string;
  /** Path inside the repository ('' for the whole repository), without leading or trailing slash. */
  readonly path: string;
}

export interface UrlSource {
  readonly kind: 'url';
  readonly url: string;
  /** The file name the download is published under (last path segment of the URL). */
  readonly name: string;
}

export interface LocalSource {
  readonly kind: 'local';
  /** The path as written after `file:` (percent-decoded): absolute, or relative to the project root. */
  readonly path: string;
}

export type FetchSource = HubSource | UrlSource | LocalSource;

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function parseSource(text: string): ParseResult<FetchSource> {
  if (text.startsWith('hf://')) return parseHub(text);
  if (text.startsWith('https://') || text.startsWith('http://')) return parseUrl(text);
  if (text.startsWith('file:')) return parseLocal(text);
  return { ok: false, message: `"${text}" is not a source: write hf://owner/repo[/path], an https:// URL, file:///absolute/path or file:path/relative/to/the/project` };
}

function parseHub(text: string): ParseResult<HubSource> {
  let rest = text.slice('hf://'.length);
  let repoType: RepoType = 'model';
  if (rest.startsWith('datasets/')) {
    repoType = 'dataset';
    rest = rest.slice('datasets/'.length);
  } else if (rest.startsWith('models/')) {
    rest = rest.slice('models/'.length);
  } else if (rest.startsWith('spaces/')) {
    return { ok: false, message: `"${text}": Spaces are not supported, only model and dataset repositories` };
  }
  const parts = rest.split('/');
  const owner = parts[0] ?? '';
  const nameAndRev = parts[1] ?? '';
  const at = nameAndRev.indexOf('@');
  const name = at < 0 ? nameAndRev : nameAndRev.slice(0, at);
  let revision = 'main';
  if (at >= 0) {
    try {
      revision = decodeURIComponent(nameAndRev.slice(at + 1));
    } catch {
      return { ok: false, message: `"${text}": the revision after @ is not valid percent-encoding` };
    }
    if (revision === '') return { ok: false, message: `"${text}": empty revision after @` };
  }
  if (!NAME.test(owner) || !NAME.test(name)) {
    return { ok: false, message: `"${text}": expected hf://owner/repo with letters, digits, '.', '_' or '-' in both names` };
  }
  const pathParts = parts.slice(2).filter((p) => p !== '');
  if (pathParts.some((p) => p === '..' || p === '.')) {
    return { ok: false, message: `"${text}": '.' and '..' are not allowed in a repository path` };
  }
  return { ok: true, value: { kind: 'hub', repoType, repo: `${owner}/${name}`, revision, path: pathParts.join('/') } };
}

function parseUrl(text: string): ParseResult<UrlSource> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, message: `"${text}" is not a valid URL` };
  }
  const segments = url.pathname.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1];
  if (last === undefined) return { ok: false, message: `"${text}": the URL names no file (its path is empty)` };
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  if (name === '.' || name === '..' || name.includes('/')) {
    return { ok: false, message: `"${text}": cannot derive a file name from the URL` };
  }
  return { ok: true, value: { kind: 'url', url: url.toString(), name } };
}

function parseLocal(text: string): ParseResult<LocalSource> {
  let rest = text.slice('file:'.length);
  if (rest.startsWith('//')) {
    // file://HOST/path: only the local host makes sense for a copy.
    const slash = rest.indexOf('/', 2);
    const host = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    if (host !== '' && host !== 'localhost') {
      return { ok: false, message: `"${text}": file:// URLs name this machine only (file:///path or file://localhost/path), not host "${host}"` };
    }
    rest = slash < 0 ? '' : rest.slice(slash);
  }
  let path: string;
  try {
    path = decodeURIComponent(rest);
  } catch {
    return { ok: false, message: `"${text}": the path is not valid percent-encoding` };
  }
  if (path === '' || path === '/') return { ok: false, message: `"${text}" names no file: write file:///absolute/path or file:path/relative/to/the/project` };
  if (path.includes('\0')) return { ok: false, message: `"${text}": the path contains a NUL byte` };
  return { ok: true, value: { kind: 'local', path } };
}

/** A source written back as text (for logs and manifests). */
export function formatSource(source: FetchSource): string {
  if (source.kind === 'url') return source.url;
  if (source.kind === 'local') return source.path.startsWith('/') ? `file://${encodeURI(source.path)}` : `file:${encodeURI(source.path)}`;
  const prefix = source.repoType === 'dataset' ? 'datasets/' : '';
  const rev = source.revision === 'main' ? '' : `@${encodeURIComponent(source.revision)}`;
  return `hf://${prefix}${source.repo}${rev}${source.path === '' ? '' : `/${source.path}`}`;
}
