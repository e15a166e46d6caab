// The fetch core: sources (hub repositories, folders, files; plain URLs; local files and folders
// named by `file:`) → a folder of verified files. Revisions are resolved to commit shas once and remembered in the work dir, so a resumed
// fetch downloads the same commit as the interrupted one. Files download in parallel into the
// work dir; each is verified, then kept under workDir/verified/ until all are done, and only then
// moved into `outDir`. A rerun skips verified files and resumes partial ones with HTTP Range.
// Local files are copied the same way (runner/fetch/local.ts); a changed local file is copied again.

import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { FetchError } from './errors.js';
import { HubClient } from './hub.js';
import type { RemoteFile } from './hub.js';
import { parseSource, formatSource } from './source.js';
import type { FetchSource } from './source.js';
import { makeRedactor } from './redact.js';
import { defaultRetryPolicy } from './retry.js';
import type { RetryPolicy } from './retry.js';
import { downloadFile } from './download.js';
import type { DownloadEvent } from './download.js';
import { runPool } from './pool.js';
import { RateMeter } from './rate.js';
import { requireFree } from './disk.js';
import { copyLocalFile, planLocal } from './local.js';
import type { LocalFile } from './local.js';

export interface SourceSpec {
  /** `hf://…`, `https://…` or `file:…` (see source.ts). */
  readonly source: string;
  /** Subfolder of the output this source lands in ('' = the output folder itself). */
  readonly into?: string;
  /** Plain URLs and local files: the sha256 the file must have (hub files carry their own checksums). */
  readonly sha256?: string;
  /** Plain URLs and local files: the exact size. */
  readonly size?: number;
}

export interface FetchProgress {
  readonly doneBytes: number;
  /** Undefined while some sizes are unknown (plain URLs without a size). */
  readonly totalBytes: number | undefined;
  readonly bytesPerSec: number;
  readonly filesDone: number;
  readonly filesTotal: number;
}

export interface FetchOptions {
  readonly sources: readonly SourceSpec[];
  /** Where the verified files end up (the stage's output folder). */
  readonly outDir: string;
  /** Kept across interruptions: partial files, verified files, pinned commits. */
  readonly workDir: string;
  /** The folder relative `file:` sources start at (the project root; default the current directory). */
  readonly root?: string;
  /** Environment to read HF_ENDPOINT and HF_TOKEN from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly concurrency?: number;
  /** No bytes for this long → drop the connection and resume with Range (default 60 s). */
  readonly stallMs?: number;
  readonly retry?: RetryPolicy;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: FetchProgress) => void;
  readonly onEvent?: (e: DownloadEvent) => void;
  /** Human-readable lines (already redacted). */
  readonly log?: (line: string) => void;
}

export interface FetchedFile {
  /** Path relative to the output folder. */
  readonly relPath: string;
  readonly size: number;
  readonly sha256: string;
  readonly source: string;
}

export interface FetchManifest {
  /** Each source with the commit it was downloaded at (hub sources). */
  readonly sources: readonly { readonly source: string; readonly commit?: string }[];
  readonly files: readonly FetchedFile[];
  /** Bytes that came over the network in this call (excludes resumed and skipped bytes). */
  readonly receivedBytes: number;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

interface Planned {
  readonly file: RemoteFile;
  readonly sourceText: string;
  /** Set for `file:` sources: the file is copied, not downloaded. */
  readonly local?: LocalFile;
}

interface VerifiedRecord {
  readonly identity: string;
  readonly sha256: string;
  readonly size: number;
}

export async function fetchAll(o: FetchOptions): Promise<FetchManifest> {
  const env = o.env ?? process.env;
  const token = env.HF_TOKEN !== undefined && env.HF_TOKEN !== '' ? env.HF_TOKEN : undefined;
  const endpoint = env.HF_ENDPOINT !== undefined && env.HF_ENDPOINT !== '' ? env.HF_ENDPOINT : DEFAULT_ENDPOINT;
  const redact = makeRedactor([token]);
  const stallMs = o.stallMs ?? 60_000;
  const retry = o.retry ?? defaultRetryPolicy;
  const log = (line: string): void => o.log?.(redact(line));
  const hub = new HubClient({ endpoint, token, redact, stallMs, retry, ...(o.signal ? { signal: o.signal } : {}) });
  await mkdir(o.workDir, { recursive: true });

  // 1. Resolve every source to files (commits pinned on first resolution).
  const pinsPath = join(o.workDir, 'pinned-commits.json');
  const pins = await readJson<Record<string, string>>(pinsPath, {});
  const planned: Planned[] = [];
  const manifestSources: { source: string; commit?: string }[] = [];
  for (const spec of o.sources) {
    const parsed = parseSource(spec.source);
    if (!parsed.ok) throw new FetchError('bad-response', parsed.message);
    const source: FetchSource = parsed.value;
    const text = formatSource(source);
    const into = (spec.into ?? '').replace(/^\/+|\/+$/g, '');
    const place = (rel: string): string => (into === '' ? rel : `${into}/${rel}`);
    if (source.kind === 'url') {
      planned.push({
        sourceText: text,
        file: {
          relPath: place(source.name),
          url: source.url,
          size: spec.size,
          sha256: spec.sha256?.toLowerCase(),
          gitSha1: undefined,
          identity: spec.sha256 !== undefined ? `sha256:${spec.sha256.toLowerCase()}` : `url:${source.url}`,
          display: source.url,
        },
      });
      manifestSources.push({ source: text });
      continue;
    }
    if (source.kind === 'local') {
      const found = await planLocal(source, text, o.root ?? process.cwd(), { ...(spec.sha256 !== undefined ? { sha256: spec.sha256 } : {}), ...(spec.size !== undefined ? { size: spec.size } : {}) });
      log(`${text}: ${found.path} (${found.files.length} file${found.files.length === 1 ? '' : 's'})`);
      for (const { relPath, file } of found.files) {
        const local: LocalFile = { ...file, relPath: place(relPath) };
        planned.push({
          sourceText: text,
          local,
          file: { relPath: local.relPath, url: `file://${encodeURI(local.path)}`, size: local.size, sha256: local.sha256, gitSha1: undefined, identity: local.identity, display: local.display },
        });
      }
      manifestSources.push({ source: text });
      continue;
    }
    const pinKey = `${source.repoType}:${source.repo}@${source.revision}`;
    let commit = pins[pinKey];
    if (commit === undefined) {
      commit = await hub.resolveCommit(source);
      pins[pinKey] = commit;
      await writeJsonAtomic(pinsPath, pins);
    }
    log(`${text}: revision ${source.revision} is commit ${commit}`);
    const files = await hub.listFiles(source, commit);
    for (const file of files) planned.push({ sourceText: text, file: { ...file, relPath: place(file.relPath) } });
    manifestSources.push({ source: text, commit });
  }
  const seen = new Map<string, string>();
  for (const p of planned) {
    const other = seen.get(p.file.relPath);
    if (other !== undefined) throw new FetchError('bad-response', `two sources write "${p.file.relPath}": ${other} and ${p.sourceText}; give one of them \`into\` a subfolder`);
    seen.set(p.file.relPath, p.sourceText);
  }

  // 2. Skip files already verified by an earlier run; check the disk has room for the rest.
  const verifiedDir = join(o.workDir, 'verified');
  const partsDir = join(o.workDir, 'parts');
  const recordsPath = join(o.workDir, 'verified.json');
  const records = await readJson<Record<string, VerifiedRecord>>(recordsPath, {});
  const todo: Planned[] = [];
  const done: FetchedFile[] = [];
  for (const p of planned) {
    const rec = records[p.file.relPath];
    if (rec !== undefined && rec.identity === p.file.identity && (await sizeOrUndefined(join(verifiedDir, p.file.relPath))) === rec.size) {
      done.push({ relPath: p.file.relPath, size: rec.size, sha256: rec.sha256, source: p.sourceText });
    } else {
      todo.push(p);
    }
  }
  let remaining = 0;
  let sizesKnown = true;
  for (const p of todo) {
    if (p.file.size === undefined) sizesKnown = false;
    else remaining += p.file.size - (p.local !== undefined ? 0 : ((await sizeOrUndefined(partPathOf(partsDir, p.file))) ?? 0));
  }
  await mkdir(partsDir, { recursive: true });
  await requireFree(partsDir, remaining);
  const totalBytes = sizesKnown ? planned.reduce((s, p) => s + (p.file.size ?? 0), 0) : undefined;
  log(`${planned.length} files, ${done.length} already verified, ${todo.length} to download`);

  // 3. Download in parallel; progress counts bytes on disk (resumed and verified ones included).
  const meter = new RateMeter();
  let onDiskBefore = done.reduce((s, f) => s + f.size, 0);
  // A local copy starts over, so only downloads count their partial bytes.
  for (const p of todo) if (p.local === undefined) onDiskBefore += (await sizeOrUndefined(partPathOf(partsDir, p.file))) ?? 0;
  let filesDone = done.length;
  let lastReport = 0;
  const report = (force: boolean): void => {
    const now = performance.now();
    if (!force && now - lastReport < 200) return;
    lastReport = now;
    // A restart from zero re-counts bytes, so never report more than the total.
    const doneBytes = Math.min(onDiskBefore + meter.done, totalBytes ?? Infinity);
    o.onProgress?.({ doneBytes, totalBytes, bytesPerSec: meter.rate(), filesDone, filesTotal: planned.length });
  };
  report(true);
  let received = 0;
  const fetched = await runPool(todo, o.concurrency ?? 4, async (p) => {
    if (p.local !== undefined) {
      const copied = await copyLocalFile(p.local, partPathOf(partsDir, p.file), join(verifiedDir, p.file.relPath), {
        ...(o.signal ? { signal: o.signal } : {}),
        onBytes: (n) => {
          meter.add(n);
          report(false);
        },
        ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      });
      records[p.file.relPath] = { identity: p.file.identity, sha256: copied.sha256, size: copied.size };
      await writeJsonAtomic(recordsPath, records);
      filesDone++;
      report(true);
      return { relPath: p.file.relPath, size: copied.size, sha256: copied.sha256, source: p.sourceText } satisfies FetchedFile;
    }
    const isHub = p.sourceText.startsWith('hf://');
    const result = await downloadFile(p.file, partPathOf(partsDir, p.file), join(verifiedDir, p.file.relPath), {
      headers: isHub ? hub.authHeaders() : {},
      stallMs,
      retry,
      redact,
      ...(o.signal ? { signal: o.signal } : {}),
      onBytes: (n) => {
        meter.add(n);
        report(false);
      },
      onEvent: (e) => {
        if (e.type === 'retry' || e.type === 'restart') log(`${e.file}: ${e.type === 'retry' ? `${e.message}; retrying in ${e.delayMs} ms` : `starting over (${e.reason})`}`);
        o.onEvent?.(e);
      },
      authHint: isHub
        ? token ? 'the token in HF_TOKEN was rejected (expired or mistyped?)' : 'the file needs a token: set HF_TOKEN to a token with read access'
        : 'the server wants credentials, which cfpipe sends only to the hub',
    });
    received += result.received;
    records[p.file.relPath] = { identity: p.file.identity, sha256: result.sha256, size: result.size };
    await writeJsonAtomic(recordsPath, records);
    filesDone++;
    report(true);
    return { relPath: p.file.relPath, size: result.size, sha256: result.sha256, source: p.sourceText } satisfies FetchedFile;
  });

  // 4. Everything verified: move into the output folder.
  const files = [...done, ...fetched].sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  for (const f of files) await moveInto(join(verifiedDir, f.relPath), join(o.outDir, f.relPath));
  const manifest: FetchManifest = { sources: manifestSources, files, receivedBytes: received };
  await writeJsonAtomic(join(o.workDir, 'manifest.json'), manifest);
  return manifest;
}

/**
 * Partial files are named by content identity, so a changed listing never reuses a stale one, and
 * by destination, so the same content fetched to two places (two `into`s) never shares one.
 */
function partPathOf(partsDir: string, file: RemoteFile): string {
  const id = createHash('sha256').update(file.identity).update('\0').update(file.relPath).digest('hex').slice(0, 16);
  return join(partsDir, `${id}-${basename(file.relPath)}.part`);
}

async function moveInto(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, `${to}.cfpipe-partial`);
    await rename(`${to}.cfpipe-partial`, to);
    await rm(from, { force: true });
  }
}

async function sizeOrUndefined(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

async function readJson<T>(path: string, fallback: T): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return fallback;
  }
}

let tmpCounter = 0;

/** Write a JSON file by rename, so a kill never leaves it half-written. */
async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${tmpCounter++}`;
  await writeFile(tmp, JSON.stringify(value, null, 1));
  await rename(tmp, path);
}
