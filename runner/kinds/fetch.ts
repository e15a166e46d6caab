// `fetch`: files and whole repositories from a Hugging Face-compatible hub, plain URLs, or local
// files and folders (`file:///absolute/path`, or `file:path` relative to the project root).
//
//   stage base: fetch {
//     source = "hf://acme/tiny-video@v1"                  # a repository, folder or file; or
//     sources = ["hf://datasets/acme/clips/ODE6KCausal_chunkwise_0",
//                { source = "https://example.org/x.bin", sha256 = "…", size = 123, into = "extra" },
//                "file:data/prompts.txt"]
//     concurrency = 4                                      # files in parallel (default 4)
//     stall_timeout = 60                                   # seconds without a byte before resuming
//     output model: dir                                    # `file` when exactly one file is fetched
//   }
//
// The endpoint comes from HF_ENDPOINT (default https://huggingface.co), the token from HF_TOKEN
// (never printed). Partial and verified files live in the task's work dir, so an interrupted
// fetch resumes with HTTP Range on the next run; see runner/fetch/fetch.ts.
//
// The cache key holds the sources as written (and their sha256/size), not the bytes behind them:
// as with a URL whose file changes on the server, editing a `file:` source's file does not rerun a
// finished fetch by itself (`cfpipe run --force <stage>` does; a pinned sha256 makes a changed
// file fail loudly instead of passing unnoticed).

import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Value } from '../graph.js';
import { fetchAll } from '../fetch/fetch.js';
import type { SourceSpec } from '../fetch/fetch.js';
import { FetchError } from '../fetch/errors.js';
import { formatBytes } from '../fetch/disk.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const isMap = (v: Value | undefined): v is { readonly [k: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The stage's sources, from `source` (one; `url` is its older spelling) or `sources` (a list of strings or maps). */
export function readSources(params: { readonly [k: string]: Value }): SourceSpec[] {
  const one = params.source ?? params.url;
  const raw: readonly Value[] = params.sources !== undefined ? (Array.isArray(params.sources) ? params.sources : [params.sources as Value]) : one !== undefined ? [one] : [];
  if (raw.length === 0) throw new KindError('fetch: set `source` (or `sources`) to hf://owner/repo[/path], an https:// URL, file:///absolute/path or file:path/in/the/project');
  return raw.map((item, i) => {
    if (typeof item === 'string') {
      // A single source may carry its checksum at stage level.
      const sha256 = raw.length === 1 && typeof params.sha256 === 'string' ? params.sha256 : undefined;
      const size = raw.length === 1 && typeof params.size === 'number' ? params.size : undefined;
      return { source: item, ...(sha256 !== undefined ? { sha256 } : {}), ...(size !== undefined ? { size } : {}) };
    }
    if (!isMap(item) || typeof item.source !== 'string') throw new KindError(`fetch: sources[${i}] must be a string or a map with a \`source\` string`);
    const spec: { source: string; into?: string; sha256?: string; size?: number } = { source: item.source };
    if (typeof item.into === 'string') spec.into = item.into;
    if (typeof item.sha256 === 'string') spec.sha256 = item.sha256;
    if (typeof item.size === 'number') spec.size = item.size;
    return spec;
  });
}

function onlyOutput(ctx: KindContext): { name: string; path: string; type: string } {
  const outputs = ctx.task.outputs;
  if (outputs.length !== 1 || outputs[0] === undefined) throw new KindError(`fetch: stage ${ctx.task.stage} must declare exactly one output (a dir, or a file for a single file)`);
  const path = ctx.outputs[outputs[0].name];
  if (path === undefined) throw new KindError(`fetch: no path for output \`${outputs[0].name}\``);
  return { name: outputs[0].name, path, type: outputs[0].type };
}

export const kind: StageKind = {
  name: 'fetch',
  async run(ctx) {
    const sources = readSources(ctx.task.params);
    const out = onlyOutput(ctx);
    const asFile = out.type === 'file';
    const concurrency = typeof ctx.task.params.concurrency === 'number' ? ctx.task.params.concurrency : 4;
    const stall = typeof ctx.task.params.stall_timeout === 'number' ? ctx.task.params.stall_timeout : 60;
    const outDir = asFile ? join(ctx.workDir, 'single-file') : out.path;
    let manifest;
    try {
      manifest = await fetchAll({
        sources,
        outDir,
        workDir: join(ctx.workDir, 'fetch'),
        root: ctx.root,
        concurrency,
        stallMs: stall * 1000,
        signal: ctx.signal,
        log: (line) => ctx.log(line),
        onProgress: (p) => {
          const metrics = { MiB_per_s: Math.round((p.bytesPerSec / 1048576) * 10) / 10, files: p.filesDone };
          if (p.totalBytes !== undefined) ctx.progress(p.doneBytes, p.totalBytes, metrics);
          else ctx.progress(p.filesDone, p.filesTotal, metrics);
        },
      });
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      if (err instanceof FetchError) throw new KindError(`fetch: ${err.message}`);
      throw err;
    }
    if (asFile) {
      const [only, ...more] = manifest.files;
      if (only === undefined || more.length > 0) {
        throw new KindError(`fetch: output \`${out.name}\` is a file but the sources name ${manifest.files.length} files; declare it as a dir`);
      }
      await rename(join(outDir, only.relPath), out.path);
      await rm(outDir, { recursive: true, force: true });
    }
    const total = manifest.files.reduce((s, f) => s + f.size, 0);
    for (const s of manifest.sources) ctx.log(`${s.source}${s.commit ? ` @ ${s.commit}` : ''}`);
    ctx.log(`fetched ${manifest.files.length} files, ${formatBytes(total)} (${formatBytes(manifest.receivedBytes)} over the network this run), all verified`);
    if (!asFile) ctx.log(`files: ${(await readdir(out.path, { recursive: true })).length} entries in ${out.name}`);
  },
};
