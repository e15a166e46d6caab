// Reading stage params and config values for the domain's stage kinds: defaults from the
// registry's declaration, type checks that fail with a one-line KindError (no stack trace).

import type { Value } from '../graph.js';
import { STAGE_KINDS } from '../registry/kinds.js';
import { KindError } from '../kinds/types.js';
import { domainConfig, type DomainConfig, type Shape } from './clips.js';
import { SpaceToDepthVae } from './vae.js';

type Params = { readonly [k: string]: Value };

/** The param's value, or the registry's default for that kind. */
export function paramOrDefault(kind: string, params: Params, name: string): Value | undefined {
  return params[name] ?? STAGE_KINDS[kind]?.params[name]?.default;
}

export function intParam(kind: string, params: Params, name: string, min: number, fallback?: number): number {
  const v = paramOrDefault(kind, params, name) ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new KindError(`${kind}: \`${name}\` must be an integer ≥ ${min}, got ${JSON.stringify(v ?? null)}`);
  return v;
}

export function boolParam(kind: string, params: Params, name: string, fallback: boolean): boolean {
  const v = paramOrDefault(kind, params, name) ?? fallback;
  if (typeof v !== 'boolean') throw new KindError(`${kind}: \`${name}\` must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function stringParam(kind: string, params: Params, name: string): string | undefined {
  const v = paramOrDefault(kind, params, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new KindError(`${kind}: \`${name}\` must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export function stringListParam(kind: string, params: Params, name: string): string[] | undefined {
  const v = paramOrDefault(kind, params, name);
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new KindError(`${kind}: \`${name}\` must be a list of strings, got ${JSON.stringify(v)}`);
  return v as string[];
}

/**
 * The clip geometry and the VAE a config's `model_kwargs` implies: latent frames/height/width/
 * channels [F, 3·f², h, w] ↔ RGB clips of F frames of (h·f)×(w·f) with a factor-f VAE. Without
 * model_kwargs: the CPU preset (9 frames of 32×32, factor 4).
 */
export function geometryFromConfig(kind: string, config: { readonly [k: string]: Value } | undefined): { frames: number; height: number; width: number; vae: SpaceToDepthVae } {
  const mk = config?.model_kwargs;
  if (mk === undefined || mk === null || typeof mk !== 'object' || Array.isArray(mk)) return { frames: 9, height: 32, width: 32, vae: new SpaceToDepthVae(4) };
  const get = (key: string, fallback: number) => {
    const v = (mk as { readonly [k: string]: Value })[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new KindError(`${kind}: config \`model_kwargs.${key}\` must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const channels = get('channels', 48);
  const factor = Math.round(Math.sqrt(channels / 3));
  if (factor * factor * 3 !== channels || (factor & (factor - 1)) !== 0) {
    throw new KindError(`${kind}: config \`model_kwargs.channels\` = ${channels} is not 3·f² for a power-of-two f (the built-in VAE is a space-to-depth): use 3, 12, 48 or 192`);
  }
  return { frames: get('frames', 9), height: get('height', 8) * factor, width: get('width', 8) * factor, vae: new SpaceToDepthVae(factor) };
}

/** The domain a synth stage draws from. */
export function domainFromParams(kind: string, params: Params, geometry: { frames: number; height: number; width: number }): DomainConfig {
  const colors = stringListParam(kind, params, 'colors');
  const shapes = stringListParam(kind, params, 'shapes');
  const directions = stringListParam(kind, params, 'directions');
  try {
    return domainConfig({
      ...geometry,
      seed: intParam(kind, params, 'seed', 0, 0),
      ...(colors ? { colors } : {}),
      ...(shapes ? { shapes: shapes as Shape[] } : {}),
      ...(directions ? { directions } : {}),
    });
  } catch (error) {
    throw new KindError(`${kind}: ${(error as Error).message}`);
  }
}

/** `lmdb_format`: 2 (lmdb-js, what cfpipe's own stages read; default) or 1 (LMDB 0.9, for upstream's Python tools). */
export function lmdbFormatParam(kind: string, params: Params): 1 | 2 {
  const v = params.lmdb_format ?? 2;
  if (v !== 1 && v !== 2) throw new KindError(`${kind}: \`lmdb_format\` must be 1 (LMDB 0.9, upstream's Python tools) or 2 (lmdb-js), got ${JSON.stringify(v)}`);
  return v;
}
