// The folder an upstream script runs in: a view of the upstream checkout where what upstream
// hard-codes relative to its working directory (spec §1.2, §6.8) is replaced by cfpipe's inputs.
//
//   <run>/train.py, model/, utils/, ...         symlinks to the checkout (Python resolves the
//                                               script's symlink, so its imports come from there)
//   <run>/configs/<stage yaml>                  the derived config (generator_ckpt, data_path, ...
//                                               pointing at this task's inputs); other configs linked
//   <run>/wan_models/Wan2.1-T2V-1.3B            -> the fetched model (a `mounts` entry)
//   <run>/logs/<run name>/                      a real folder: checkpoints never land in the checkout
//
// So the command line is exactly the upstream README's (`train.py --config_path configs/X.yaml
// --logdir logs/X`), the checkout is never written, and every hand-off is explicit.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { Value } from '../../graph.js';
import { KindError } from '../types.js';

export interface OverlaySpec {
  /** The upstream checkout (absolute). */
  readonly repo: string;
  /** The folder to build (absolute; created if missing). */
  readonly run: string;
  /** Run-relative path → absolute target to link there (inputs). */
  readonly mounts: ReadonlyMap<string, string>;
  /** Run-relative path → file content (derived configs). */
  readonly files: ReadonlyMap<string, string>;
  /** Run-relative folders that must be real (log dirs). */
  readonly realDirs: readonly string[];
  /** Run-relative paths the script writes (outputs): never linked to the checkout, parents real. */
  readonly reserved: readonly string[];
}

/** A run-relative path, checked to stay inside the run folder. */
export function runRelative(path: string, what: string): string {
  const clean = normalize(path).replace(/[\\/]+$/, '');
  if (isAbsolute(clean) || clean === '..' || clean.startsWith(`..${sep}`) || clean === '.' || clean === '') {
    throw new KindError(`upstream: ${what} \`${path}\` must be a relative path inside the upstream checkout's layout`);
  }
  return clean;
}

/** Removes the symlinks a previous attempt left in `dir` (real files — logs, outputs — stay). */
function removeLinks(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) rmSync(path);
    else if (st.isDirectory()) removeLinks(path);
  }
}

/**
 * Builds (or rebuilds after an interruption) the run folder. Every path named in mounts, files or
 * realDirs has real folders as its ancestors; each such folder that also exists in the checkout
 * gets links to the checkout's other entries, so the script still finds everything else.
 */
export function buildOverlay(spec: OverlaySpec): void {
  if (!existsSync(join(spec.repo))) throw new KindError(`upstream: the checkout ${spec.repo} does not exist (set the pipeline's upstream_repo param)`);
  mkdirSync(spec.run, { recursive: true });
  removeLinks(spec.run);
  // Folders that must be real: ancestors of every replaced path, and the realDirs themselves.
  const real = new Set<string>(['']);
  const addAncestors = (rel: string): void => {
    let d = dirname(rel);
    while (d !== '.' && d !== '') {
      real.add(d);
      d = dirname(d);
    }
  };
  for (const rel of [...spec.mounts.keys(), ...spec.files.keys()]) addAncestors(rel);
  for (const rel of spec.realDirs) {
    addAncestors(rel);
    real.add(rel);
  }
  for (const rel of spec.reserved) addAncestors(rel);
  const taken = new Set<string>([...real, ...spec.mounts.keys(), ...spec.files.keys(), ...spec.reserved]);
  for (const dir of [...real].sort()) {
    const here = join(spec.run, dir);
    mkdirSync(here, { recursive: true });
    const inRepo = join(spec.repo, dir);
    let names: string[] = [];
    try {
      names = lstatSync(inRepo).isDirectory() ? readdirSync(inRepo) : [];
    } catch {
      names = [];
    }
    for (const name of names) {
      const rel = dir === '' ? name : join(dir, name);
      if (taken.has(rel) || existsSync(join(here, name))) continue;
      symlinkSync(join(inRepo, name), join(here, name));
    }
  }
  for (const [rel, target] of spec.mounts) {
    const at = join(spec.run, rel);
    rmSync(at, { recursive: true, force: true });
    symlinkSync(resolve(target), at);
  }
  for (const [rel, content] of spec.files) {
    const at = join(spec.run, rel);
    rmSync(at, { recursive: true, force: true });
    writeFileSync(`${at}.tmp`, content);
    renameSync(`${at}.tmp`, at);
  }
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The upstream YAML at `configPath` (inside the checkout) with `set` applied: keys as upstream
 * names them (`generator_ckpt`, `data_path`, `lr`...), dotted names for nested maps
 * (`model_kwargs.num_frame_per_block`). Comments are not kept; the values are.
 */
export function deriveConfig(repo: string, configPath: string, set: { readonly [key: string]: Value }): string {
  const file = join(repo, configPath);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new KindError(`upstream: cannot read the config ${file}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new KindError(`upstream: ${file} is not valid YAML (${(error as Error).message.split('\n')[0]})`);
  }
  const root: Record<string, unknown> = isMap(doc) ? { ...doc } : {};
  for (const [key, value] of Object.entries(set)) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      node[part] = isMap(next) ? { ...next } : {};
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]!] = value;
  }
  const header = `# Derived by cfpipe from ${relative(process.cwd(), file) || file}: ${Object.keys(set).join(', ') || 'no keys'} set for this task.\n`;
  return header + stringifyYaml(root);
}
