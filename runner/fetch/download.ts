// One file, resumable: bytes go to a partial file in the work dir (kept across interruptions),
// a restart continues with `Range: bytes=<partial size>-`, the running checksum is checked
// against the hub's (LFS sha256, or git blob sha1 and size) and only then is the file renamed
// to its destination. Nothing unverified is ever published.

import { mkdir, open, readFile, rename, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FetchError, httpStatusError } from './errors.js';
import { header, openGet, toFetchError } from './http.js';
import type { OpenResponse } from './http.js';
import { RunningDigest } from './digest.js';
import { diskFullError } from './disk.js';
import { withRetries } from './retry.js';
import type { RetryPolicy } from './retry.js';
import type { Redactor } from './redact.js';
import type { RemoteFile } from './hub.js';

/** Events a caller can trace (tests, logs). Messages are already redacted. */
export type DownloadEvent =
  | { readonly type: 'request'; readonly file: string; readonly offset: number; readonly status: number }
  | { readonly type: 'restart'; readonly file: string; readonly reason: string }
  | { readonly type: 'retry'; readonly file: string; readonly message: string; readonly delayMs: number }
  | { readonly type: 'written'; readonly file: string; readonly onDisk: number }
  | { readonly type: 'verified'; readonly file: string; readonly sha256: string; readonly size: number };

export interface DownloadOptions {
  /** Headers for the request (the hub token); dropped by redirects that leave the origin. */
  readonly headers: Readonly<Record<string, string>>;
  readonly stallMs: number;
  readonly retry: RetryPolicy;
  readonly redact: Redactor;
  readonly signal?: AbortSignal;
  /** Called with each chunk's size as it reaches the partial file. */
  readonly onBytes?: (delta: number) => void;
  readonly onEvent?: (event: DownloadEvent) => void;
  /** Hint shown for a 401 (differs for hub and plain URLs). */
  readonly authHint: string;
}

export interface DownloadedFile {
  readonly relPath: string;
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** Bytes of the partial file found at start (0 for a fresh download). */
  readonly resumedFrom: number;
  /** Bytes received over the network by this call. */
  readonly received: number;
}

interface PartMeta {
  readonly identity: string;
  /** Strong validator of the remote bytes (ETag or Last-Modified) for If-Range. */
  readonly validator: string | undefined;
}

/** Download `file` via `partPath` (in the work dir) and publish it at `destPath` once verified. */
export async function downloadFile(file: RemoteFile, partPath: string, destPath: string, o: DownloadOptions): Promise<DownloadedFile> {
  await mkdir(dirname(partPath), { recursive: true });
  const metaPath = `${partPath}.json`;
  let meta = await readMeta(metaPath);
  let onDisk = await sizeOf(partPath);
  if (meta === undefined || meta.identity !== file.identity || (file.size !== undefined && onDisk > file.size)) {
    if (onDisk > 0) o.onEvent?.({ type: 'restart', file: file.display, reason: 'the partial file belongs to other content' });
    await rm(partPath, { force: true });
    onDisk = 0;
    meta = { identity: file.identity, validator: undefined };
    await writeMeta(metaPath, meta);
  }
  const resumedFrom = onDisk;
  const digest = new RunningDigest(file.gitSha1 !== undefined ? file.size : undefined);
  await digest.absorbFile(partPath, onDisk);
  let received = 0;
  let checksumFailures = 0;
  let expectedSize = file.size;

  const fh = await open(partPath, 'a');
  try {
    for (;;) {
      await withRetries(
        o.retry,
        o.signal,
        async (state) => {
          if (expectedSize !== undefined && digest.offset === expectedSize) return;
          const rangeFrom = digest.offset;
          const headers: Record<string, string> = { ...o.headers };
          if (rangeFrom > 0) {
            headers.range = `bytes=${rangeFrom}-`;
            if (meta?.validator !== undefined) headers['if-range'] = meta.validator;
          }
          let res: OpenResponse;
          try {
            res = await openGet(file.url, { headers, stallMs: o.stallMs, redact: o.redact, ...(o.signal ? { signal: o.signal } : {}) });
          } catch (err) {
            throw toFetchError(err, file.url, o);
          }
          o.onEvent?.({ type: 'request', file: file.display, offset: rangeFrom, status: res.status });
          const status = res.status;
          if (status === 416 && rangeFrom > 0) {
            res.body.resume();
            // The partial may already be whole (size unknown) or the remote changed: verify decides.
            if (expectedSize === undefined) {
              expectedSize = rangeFrom;
              return;
            }
            await restartFromZero(fh, digest, o, file, 'the server refused the range');
            throw new FetchError('http', `416 for ${file.display}`, { retryable: true, status });
          }
          if (status !== 200 && status !== 206) {
            res.body.resume();
            throw httpStatusError(status, o.redact(file.display), o.authHint);
          }
          if (status === 200 && rangeFrom > 0) {
            await restartFromZero(fh, digest, o, file, 'the server sent the whole file instead of the range');
          }
          if (status === 206) {
            const range = parseContentRange(header(res.headers, 'content-range'));
            if (range === undefined || range.start !== rangeFrom) {
              res.body.resume();
              await restartFromZero(fh, digest, o, file, 'the server answered a different range');
              throw new FetchError('bad-response', `unexpected Content-Range for ${file.display}`, { retryable: true });
            }
            if (range.total !== undefined && expectedSize !== undefined && range.total !== expectedSize) {
              res.body.resume();
              throw new FetchError('checksum', `${file.display} is ${range.total} bytes on the server but the hub lists ${expectedSize}`);
            }
            expectedSize ??= range.total;
          } else {
            const length = header(res.headers, 'content-length');
            if (expectedSize === undefined && length !== undefined) expectedSize = Number(length);
          }
          const validator = strongValidator(res);
          if (meta !== undefined && validator !== meta.validator && (status === 200 || meta.validator === undefined)) {
            meta = { identity: meta.identity, validator };
            await writeMeta(metaPath, meta);
          }
          const before = digest.offset;
          try {
            await pump(res, fh, partPath, digest, expectedSize, o, file);
          } finally {
            received += Math.max(0, digest.offset - before);
            if (digest.offset > before) state.progressed = true;
          }
          if (expectedSize !== undefined && digest.offset < expectedSize) {
            throw new FetchError('network', `connection closed after ${digest.offset} of ${expectedSize} bytes of ${file.display}`, { retryable: true });
          }
          expectedSize ??= digest.offset;
        },
        (err, delayMs) => o.onEvent?.({ type: 'retry', file: file.display, message: err.message, delayMs }),
      );

      const got = digest.finish();
      const problem = verify(file, expectedSize, digest.offset, got);
      if (problem === undefined) {
        await fh.close();
        await publish(partPath, destPath);
        await rm(metaPath, { force: true });
        o.onEvent?.({ type: 'verified', file: file.display, sha256: got.sha256, size: digest.offset });
        return { relPath: file.relPath, path: destPath, size: digest.offset, sha256: got.sha256, resumedFrom, received };
      }
      checksumFailures++;
      // A bad partial from an earlier run is the likely cause the first time: start over once.
      await restartFromZero(fh, digest, o, file, problem);
      if (checksumFailures >= 2) {
        throw new FetchError('checksum', `${file.display}: ${problem}; downloaded twice with the same result, nothing was published`);
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Received bytes are gathered up to this size and written with one writev: far fewer syscalls
 * than one write per socket read. It is also the most a kill -9 can lose (bytes received but
 * not yet on disk); a dropped or stalled connection writes what it holds before retrying.
 */
export const WRITE_CHUNK = 1024 * 1024;

/** Copy the response body to the partial file; returns the bytes written. */
async function pump(res: OpenResponse, fh: FileHandle, partPath: string, digest: RunningDigest, expectedSize: number | undefined, o: DownloadOptions, file: RemoteFile): Promise<number> {
  let written = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  const flush = async (): Promise<void> => {
    if (heldBytes === 0) return;
    const chunks = held;
    const n = heldBytes;
    held = [];
    heldBytes = 0;
    try {
      // A short write (the disk filling up) returns a count, not an error: write the rest,
      // which then fails with ENOSPC if the space is really gone.
      let done = (await fh.writev(chunks)).bytesWritten;
      if (done < n) {
        const rest = Buffer.concat(chunks, n);
        while (done < n) {
          const w = (await fh.write(rest, done, n - done)).bytesWritten;
          if (w === 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
          done += w;
        }
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Drop whatever part of the batch may have landed, so file and digest agree.
      await fh.truncate(digest.offset).catch(() => undefined);
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        res.body.destroy();
        throw await diskFullError(dirname(partPath), partPath, expectedSize === undefined ? undefined : expectedSize - digest.offset);
      }
      throw err;
    }
    for (const c of chunks) digest.update(c);
    written += n;
    o.onBytes?.(n);
    o.onEvent?.({ type: 'written', file: file.display, onDisk: digest.offset });
  };
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      res.body.destroy(new FetchError('stalled', `no bytes of ${file.display} for ${o.stallMs} ms`, { retryable: true }));
    }, o.stallMs);
  };
  arm();
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      arm();
      if (expectedSize !== undefined && digest.offset + heldBytes + chunk.length > expectedSize) {
        res.body.destroy();
        await flush();
        throw new FetchError('checksum', `the server sent more than the ${expectedSize} bytes of ${file.display}`, { retryable: true });
      }
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes >= WRITE_CHUNK) await flush();
    }
    await flush();
  } catch (err) {
    clearTimeout(timer);
    // Keep what arrived intact before the fault: the retry resumes after it.
    if (!(err instanceof FetchError && err.code === 'disk-full')) await flush().catch(() => undefined);
    if (err instanceof FetchError) throw err;
    if (o.signal?.aborted) throw new FetchError('aborted', 'download aborted');
    const of = expectedSize === undefined ? '' : ` of ${expectedSize}`;
    throw new FetchError('network', `connection dropped after ${digest.offset}${of} bytes of ${file.display} (${o.redact((err as Error).message)})`, { retryable: true });
  } finally {
    clearTimeout(timer);
  }
  return written;
}

async function restartFromZero(fh: FileHandle, digest: RunningDigest, o: DownloadOptions, file: RemoteFile, reason: string): Promise<void> {
  o.onEvent?.({ type: 'restart', file: file.display, reason });
  await fh.truncate(0);
  digest.reset();
}

function verify(file: RemoteFile, expectedSize: number | undefined, size: number, got: { sha256: string; gitSha1: string | undefined }): string | undefined {
  if (expectedSize !== undefined && size !== expectedSize) return `size ${size} differs from the expected ${expectedSize}`;
  if (file.sha256 !== undefined && got.sha256 !== file.sha256) return `sha256 ${got.sha256} differs from the hub's ${file.sha256}`;
  if (file.gitSha1 !== undefined && got.gitSha1 !== file.gitSha1) return `git blob sha1 ${got.gitSha1 ?? '?'} differs from the hub's ${file.gitSha1}`;
  return undefined;
}

/** Rename into place; across file systems copy to a temporary name beside the target first. */
async function publish(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const tmp = `${to}.cfpipe-partial`;
    await copyFile(from, tmp);
    await rename(tmp, to);
    await rm(from, { force: true });
  }
}

function strongValidator(res: OpenResponse): string | undefined {
  const etag = header(res.headers, 'etag');
  if (etag !== undefined && !etag.startsWith('W/')) return etag;
  return header(res.headers, 'last-modified');
}

function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = value === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<PartMeta>;
    return typeof v.identity === 'string' ? { identity: v.identity, validator: typeof v.validator === 'string' ? v.validator : undefined } : undefined;
  } catch {
    return undefined;
  }
}

async function writeMeta(path: string, meta: PartMeta): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(meta));
  await rename(tmp, path);
}
