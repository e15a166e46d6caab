// Stage kind name → lazy import of its module. Kinds load only inside the worker that runs
// them, so a heavy kind (native engine) costs nothing to a run that does not use it.
// Each module exports `kind: StageKind`. A name listed here whose module is not there yet gives
// a clear "not implemented in this version" failure instead of a module-not-found trace.

import type { StageKind } from './types.js';

type KindModule = { readonly kind: StageKind };

const kindModules: Readonly<Record<string, () => Promise<KindModule>>> = {
  exec: () => import('./exec.js'),
  steps: () => import('./steps.js'),
  synth: () => importKind('synth'),
  lmdb_build: () => importKind('lmdb_build'),
  eval: () => importKind('eval'),
  report: () => importKind('report'),
  train: () => importKind('train'),
  ode_pairs: () => importKind('ode_pairs'),
  infer: () => importKind('infer'),
  fetch: () => importKind('fetch'),
  merge: () => importKind('merge'),
  upstream: () => importKind('upstream'),
};

/** Imports `./<name>.js` by computed specifier, so kinds not written yet do not break the build. */
function importKind(name: string): Promise<KindModule> {
  return import(new URL(`./${name}.js`, import.meta.url).href) as Promise<KindModule>;
}

/** The names of every stage kind the runner knows of (implemented or not). */
export const kindNames: readonly string[] = Object.keys(kindModules);

export type KindLookup = { readonly ok: true; readonly kind: StageKind } | { readonly ok: false; readonly message: string };

/** Loads a kind by name; unknown or unimplemented kinds come back as a message, not a throw. */
export async function loadKind(name: string): Promise<KindLookup> {
  const load = kindModules[name];
  if (load === undefined) return { ok: false, message: `unknown stage kind \`${name}\`` };
  let module: KindModule;
  try {
    module = await load();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(`/kinds/${name}.js`)) {
      return { ok: false, message: `stage kind \`${name}\` is not implemented in this version of cfpipe` };
    }
    throw error;
  }
  if (module.kind === undefined || typeof module.kind.run !== 'function') {
    return { ok: false, message: `stage kind \`${name}\` does not export a \`kind\` with a run function` };
  }
  return { ok: true, kind: module.kind };
}
