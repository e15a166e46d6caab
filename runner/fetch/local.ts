// `file:` sources: a local file or folder copied into the fetch output with the same guarantees as
// a download. The bytes go to a partial file in the work dir while they are hashed, the copy is
// checked against the size seen when it was planned (a file that changes mid-copy is refused) and
// against the `sha256` / `size` the stage declares, and only a verified copy is renamed into
// place. A copy is cheap, so an interrupted one starts over instead of resuming.

import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { FetchError } from './errors.js';
import { RunningDigest } from './digest.js';
import { diskFullError } from './disk.js';
import type { DownloadEvent } from './download.js';
import type { LocalSource } from './source.js';

/** One file of a local source, as planned: where it is read from and what it must be. */
export interface LocalFile {
  /** Where the file goes, relative to the output folder ('/'-separated). */
  readonly relPath: string;
  /** Absolute path of the file read. */
  readonly path: string;
  /** Size at planning time; the copy must have exactly this many bytes. */
  readonly size: number;
  /** The sha256 the stage declared, if any (lower case). */
  readonly sha256: string | undefined;
  /** Changes whenever the file's content may have: a verified copy with another identity is redone. */
  readonly identity: string;
  /** Text shown to the user for this file. */
  readonly display: string;
}

/** The absolute path a local source names: absolute as written, else under the project root. */
export function localPathOf(source: LocalSource, root: string): string {
  return isAbsolute(source.path) ? resolve(source.path) : resolve(root, source.path);
}

/**
 * The files a local source stands for: the file itself (published under its base name), or every
 * regular file under a folder (published under their paths inside it). `expect` is the stage's
 * sha256/size, which only a single file can carry.
 */
export async function planLocal(
  source: LocalSource,
  sourceText: string,
  root: string,
  expect: { readonly sha256?: string; readonly size?: number },
): Promise<{ path: string; files: { relPath: string; file: LocalFile }[] }> {
  const path = localPathOf(source, root);
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const where = isAbsolute(source.path) ? '' : ` (relative paths start at the project root ${root})`;
      throw new FetchError('not-found', `${sourceText}: no file or folder at ${path}${where}`);
    }
    if (code === 'EACCES' || code === 'EPERM') throw new FetchError('forbidden', `${sourceText}: ${path} cannot be read (permission denied)`);
    throw err;
  }
  const sha256 = expect.sha256?.toLowerCase();
  if (info.isFile()) {
    if (expect.size !== undefined && expect.size !== info.size) {
      throw new FetchError('checksum', `${sourceText}: ${path} is ${info.size} bytes but the stage expects size = ${expect.size}`);
    }
    const base = path.split(sep).pop() ?? path;
    return { path, files: [{ relPath: base, file: describe(path, base, info.size, info.mtimeMs, sha256, sourceText) }] };
  }
  if (!info.isDirectory()) throw new FetchError('bad-response', `${sourceText}: ${path} is neither a file nor a folder`);
  if (sha256 !== undefined || expect.size !== undefined) {
    throw new FetchError('bad-response', `${sourceText}: ${path} is a folder; sha256 and size apply to a single file`);
  }
  const files: { relPath: string; file: LocalFile }[] = [];
  for (const entry of await walk(path)) {
    const rel = relative(path, entry).split(sep).join('/');
    const s = await stat(entry);
    files.push({ relPath: rel, file: describe(entry, rel, s.size, s.mtimeMs, undefined, `${sourceText}/${rel}`) });
  }
  if (files.length === 0) throw new FetchError('not-found', `${sourceText}: the folder ${path} holds no files`);
  files.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  return { path, files };
}

function describe(path: string, relPath: string, size: number, mtimeMs: number, sha256: string | undefined, display: string): LocalFile {
  const identity = `file:${path}:${size}:${mtimeMs}${sha256 !== undefined ? `:sha256:${sha256}` : ''}`;
  return { relPath, path, size, sha256, identity, display };
}

/** Regular files under `dir`, following no symbolic links out of it (links are refused). */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else if (entry.isFile()) out.push(p);
    else if (entry.isSymbolicLink()) {
      const target = await stat(p).catch(() => undefined);
      if (target?.isFile()) out.push(p);
      else throw new FetchError('bad-response', `${p} is a symbolic link to ${target?.isDirectory() ? 'a folder' : 'nothing'}; only files are copied`);
    }
  }
  return out;
}

export interface CopyOptions {
  readonly signal?: AbortSignal;
  /** Called with each chunk's size as it reaches the partial file. */
  readonly onBytes?: (delta: number) => void;
  readonly onEvent?: (event: DownloadEvent) => void;
}

/** Bytes read per chunk. */
const CHUNK = 1 << 20;

/** Copy `file` via `partPath` (in the work dir) and publish it at `destPath` once verified. */
export async function copyLocalFile(file: LocalFile, partPath: string, destPath: string, o: CopyOptions): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(partPath), { recursive: true });
  await rm(partPath, { force: true });
  const digest = new RunningDigest(undefined);
  const fh = await open(partPath, 'w');
  try {
    let stream;
    try {
      stream = createReadStream(file.path, { highWaterMark: CHUNK, ...(o.signal ? { signal: o.signal } : {}) });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (digest.offset + chunk.length > file.size) {
          throw new FetchError('checksum', `${file.display} grew while it was being copied (more than the ${file.size} bytes it had); nothing was published`);
        }
        try {
          let done = 0;
          while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOSPC' || code === 'EDQUOT') throw await diskFullError(dirname(partPath), partPath, file.size - digest.offset);
          throw err;
        }
        digest.update(chunk);
        o.onBytes?.(chunk.length);
        o.onEvent?.({ type: 'written', file: file.display, onDisk: digest.offset });
      }
    } catch (err) {
      if (err instanceof FetchError) throw err;
      if (o.signal?.aborted) throw new FetchError('aborted', 'copy aborted');
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new FetchError('not-found', `${file.display}: ${file.path} disappeared while it was being copied`);
      if (code === 'EACCES' || code === 'EPERM') throw new FetchError('forbidden', `${file.display}: ${file.path} cannot be read (permission denied)`);
      throw err;
    }
    await fh.sync();
  } finally {
    await fh.close().catch(() => undefined);
  }
  const got = digest.finish();
  if (digest.offset !== file.size) {
    await rm(partPath, { force: true });
    throw new FetchError('checksum', `${file.display} shrank while it was being copied (${digest.offset} of the ${file.size} bytes it had); nothing was published`);
  }
  if (file.sha256 !== undefined && got.sha256 !== file.sha256) {
    await rm(partPath, { force: true });
    throw new FetchError('checksum', `${file.display}: sha256 ${got.sha256} differs from the expected ${file.sha256}; nothing was published`);
  }
  await mkdir(dirname(destPath), { recursive: true });
  await rename(partPath, destPath);
  o.onEvent?.({ type: 'verified', file: file.display, sha256: got.sha256, size: digest.offset });
  return { size: digest.offset, sha256: got.sha256 };
}
