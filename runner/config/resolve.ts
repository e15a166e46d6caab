// A stage's config as its trainer will read it: configs/default_config.yaml under the chosen
// YAML (the chosen file wins, maps merge key by key, as upstream's train.py does), the stage's
// `overrides` on top, and the stage's `steps` as `max_steps`. Each layer is checked on its own
// so a diagnostic points at the text that is wrong.

import { readdirSync } from 'node:fs';
import { isAbsolute, join, relative, dirname, basename } from 'node:path';
import type { SourceRange } from '../../grammar/ast.js';
import type { Diagnostic } from '../../grammar/diagnostic.js';
import { suggest } from '../../grammar/suggest.js';
import type { ResolvedConfig, Value } from '../graph.js';
import { CONFIG_KEYS, isReadBy, TRAINER_NAMES } from '../registry/index.js';
import type { ConfigConsumer, ConfigUse } from '../registry/types.js';
import type { Located } from './located.js';
import { checkConfigLayer } from './validate.js';
import { loadYamlFile } from './yaml.js';

export const DEFAULT_CONFIG = 'configs/default_config.yaml';

export interface StageConfigRequest {
  /** Project root: config paths are relative to it. */
  readonly root: string;
  /** The `config = "..."` value, as written (after interpolation). */
  readonly path: string;
  readonly pathRange: SourceRange;
  readonly use: ConfigUse;
  readonly overrides?: Located;
  /** A train stage's `trainer` param, if set. */
  readonly trainer?: { readonly value: string; readonly range: SourceRange };
  /** A train stage's `steps`, written as `max_steps`. */
  readonly steps?: number;
  /** How files are named in diagnostics (relative to the working directory when inside it). */
  readonly display: (absolutePath: string) => string;
}

export interface StageConfig {
  readonly config?: ResolvedConfig;
  readonly consumer?: ConfigConsumer;
  /** The part of the config that belongs in the cache key. */
  readonly keyValues: { readonly [key: string]: Value };
  readonly diagnostics: readonly Diagnostic[];
  /** Texts of the YAML files read, by display path (for rendering diagnostics). */
  readonly sources: ReadonlyMap<string, string>;
}

type MutableMap = { [key: string]: Value };
const isMap = (v: Value | undefined): v is { readonly [key: string]: Value } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Maps merge key by key; anything else in `over` replaces what is under it. */
export function deepMerge(under: { readonly [key: string]: Value }, over: { readonly [key: string]: Value }): MutableMap {
  const out: MutableMap = { ...under };
  for (const [key, value] of Object.entries(over)) {
    const below = out[key];
    out[key] = isMap(below) && isMap(value) ? deepMerge(below, value) : value;
  }
  return out;
}

export function resolveStageConfig(request: StageConfigRequest): StageConfig {
  const diagnostics: Diagnostic[] = [];
  const sources = new Map<string, string>();
  const chosenAbs = isAbsolute(request.path) ? request.path : join(request.root, request.path);
  const chosenName = request.display(chosenAbs);
  const chosen = loadYamlFile(chosenAbs, chosenName);
  if (!chosen) {
    const help = nearbyYaml(chosenAbs, request.path);
    diagnostics.push({
      severity: 'error',
      code: 'missing-config',
      message: `config file \`${request.path}\` does not exist`,
      range: request.pathRange,
      ...(help ? { help } : {}),
    });
    return { keyValues: {}, diagnostics, sources };
  }
  sources.set(chosenName, chosen.source);
  diagnostics.push(...chosen.diagnostics);

  const defaultAbs = join(request.root, DEFAULT_CONFIG);
  const defaults = defaultAbs === chosenAbs ? undefined : loadYamlFile(defaultAbs, request.display(defaultAbs));
  if (defaults) {
    sources.set(request.display(defaultAbs), defaults.source);
    diagnostics.push(...defaults.diagnostics);
  }
  if (!chosen.root || (defaults && !defaults.root)) return { keyValues: {}, diagnostics, sources };

  let merged = deepMerge(isMap(defaults?.root?.value) ? defaults.root.value : {}, chosen.root.value as MutableMap);
  if (request.overrides && isMap(request.overrides.value)) merged = deepMerge(merged, request.overrides.value);

  // Who reads it: fixed by the kind, or the trainer named by config / stage.
  let consumer = request.use.consumer;
  if (!consumer) {
    const fromConfig = typeof merged['trainer'] === 'string' ? merged['trainer'] : undefined;
    const fromStage = request.trainer;
    if (fromStage && fromConfig && fromStage.value !== fromConfig) {
      const where = locateKey([request.overrides, chosen.root, defaults?.root], 'trainer');
      diagnostics.push({
        severity: 'error',
        code: 'trainer-mismatch',
        message: `the stage asks for trainer \`${fromStage.value}\` but its config sets \`trainer: ${fromConfig}\``,
        range: fromStage.range,
        ...(where ? { related: [{ message: 'the config sets it here', range: where }] } : {}),
      });
    }
    const trainer = fromStage?.value ?? fromConfig;
    const mismatch = fromStage !== undefined && fromConfig !== undefined && fromStage.value !== fromConfig;
    if (mismatch) {
      // Which trainer is meant is unclear: no warnings about keys "it" does not read.
    } else if (trainer === undefined) {
      diagnostics.push({
        severity: 'error',
        code: 'missing-trainer',
        message: `config \`${request.path}\` names no \`trainer\`, and the stage sets none`,
        range: request.pathRange,
        help: `add \`trainer: ...\` to the config or \`trainer = "..."\` to the stage (one of ${TRAINER_NAMES.join(', ')})`,
      });
    } else if ((TRAINER_NAMES as readonly string[]).includes(trainer)) {
      consumer = trainer as ConfigConsumer;
      merged['trainer'] = trainer;
    }
  }

  const lenient = consumer === 'inference' || consumer === 'ode_pairs' || consumer === 'synth';
  if (defaults?.root) diagnostics.push(...checkConfigLayer(defaults.root, { consumer, warnUnread: false, lenient }));
  diagnostics.push(...checkConfigLayer(chosen.root, { consumer, warnUnread: true, lenient }));
  if (request.overrides) diagnostics.push(...checkConfigLayer(request.overrides, { consumer, warnUnread: true, lenient }));

  if (request.steps !== undefined) merged['max_steps'] = request.steps;
  const config: ResolvedConfig = { path: relative(request.root, chosenAbs).split('\\').join('/'), values: merged };
  return { config, ...(consumer ? { consumer } : {}), keyValues: semanticPart(merged, consumer), diagnostics, sources };
}

/**
 * The keys that change what the consumer computes: known keys it reads that are marked semantic,
 * plus keys cfpipe does not know (they may matter; leaving them out could serve a stale result).
 */
export function semanticPart(values: { readonly [key: string]: Value }, consumer: ConfigConsumer | undefined): MutableMap {
  const out: MutableMap = {};
  for (const [key, value] of Object.entries(values)) {
    const spec = Object.hasOwn(CONFIG_KEYS, key) ? CONFIG_KEYS[key] : undefined;
    if (spec && (!spec.semantic || (consumer && !isReadBy(spec, consumer)))) continue;
    if (spec?.keys && isMap(value)) {
      const nested: MutableMap = {};
      for (const [k, v] of Object.entries(value)) if (spec.keys[k]?.semantic !== false) nested[k] = v;
      out[key] = nested;
    } else {
      out[key] = value;
    }
  }
  return out;
}

function locateKey(layers: readonly (Located | undefined)[], key: string): SourceRange | undefined {
  for (const layer of layers) {
    const entry = layer?.entries?.get(key);
    if (entry) return entry.range;
  }
  return undefined;
}

/** "did you mean `configs/x.yaml`?" for a YAML file that does not exist, from its folder's YAML files. */
export function nearbyYaml(path: string, written: string): string | undefined {
  try {
    const names = readdirSync(dirname(path)).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'));
    const best = suggest(basename(path), names);
    return best ? `did you mean \`${written.replace(/[^/\\]*$/, best)}\`?` : undefined;
  } catch {
    return undefined;
  }
}
