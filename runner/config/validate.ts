// Check one layer of a stage's config (default_config.yaml, the chosen YAML, or the stage's
// `overrides`) against the registry: wrong types are errors at the value's text; keys the
// consumer does not read are warnings with a suggestion.

import type { Diagnostic } from '../../grammar/diagnostic.js';
import { suggest } from '../../grammar/suggest.js';
import { CONFIG_KEYS, isReadBy, readersOf } from '../registry/index.js';
import type { ConfigConsumer, ConfigKeySpec } from '../registry/types.js';
import type { Located } from './located.js';
import { typeMismatch } from './types.js';

export interface LayerCheck {
  /** Who reads the config; absent when it is not known (a train stage without a valid trainer). */
  readonly consumer?: ConfigConsumer;
  /** Warn about keys the consumer does not read (off for default_config.yaml, which serves all). */
  readonly warnUnread: boolean;
  /**
   * Tools that are handed a trainer's YAML (inference reads the DMD config, as upstream does)
   * are only warned about keys nobody knows, not about the trainer's keys they skip.
   */
  readonly lenient: boolean;
}

const didYouMean = (name: string, candidates: readonly string[]): string | undefined => {
  const best = suggest(name, candidates);
  return best === undefined ? undefined : `did you mean \`${best}\`?`;
};

export function checkConfigLayer(root: Located, check: LayerCheck): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const [name, entry] of root.entries ?? []) {
    const spec = Object.hasOwn(CONFIG_KEYS, name) ? CONFIG_KEYS[name] : undefined;
    const keyRange = entry.keyRange ?? entry.range;
    if (!spec) {
      if (!check.warnUnread) continue;
      const readable = Object.keys(CONFIG_KEYS).filter((k) => !check.consumer || isReadBy(CONFIG_KEYS[k]!, check.consumer));
      const help = didYouMean(name, readable) ?? didYouMean(name, Object.keys(CONFIG_KEYS));
      diagnostics.push({
        severity: 'warning',
        code: 'config-unknown-key',
        message: check.consumer
          ? `\`${name}\` is not a config key the \`${check.consumer}\` ${consumerNoun(check.consumer)} reads`
          : `\`${name}\` is not a known config key`,
        range: keyRange,
        ...(help ? { help } : {}),
      });
      continue;
    }
    diagnostics.push(...checkValue(name, entry, spec));
    if (spec.keys && entry.entries) diagnostics.push(...checkNested(name, entry, spec.keys, check.warnUnread));
    // A trainer's YAML is also what inference reads (upstream's inference.py takes the same
    // file), so keys inference reads are never "unused" in it.
    if (check.warnUnread && check.consumer && !check.lenient && !isReadBy(spec, check.consumer) && !isReadBy(spec, 'inference')) {
      const readers = readersOf(spec);
      diagnostics.push({
        severity: 'warning',
        code: 'config-key-unused',
        message:
          readers.length === 0
            ? `\`${name}\` has no effect: nothing reads it (upstream ignores it too)`
            : `\`${name}\` is not read by the \`${check.consumer}\` ${consumerNoun(check.consumer)} (only by ${readers.join(', ')})`,
        range: keyRange,
        help: 'remove it, or use a config meant for this stage',
      });
    }
  }
  return diagnostics;
}

function checkNested(
  parent: string,
  entry: Located,
  keys: { readonly [key: string]: ConfigKeySpec },
  warnUnknown: boolean,
): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const [name, child] of entry.entries ?? []) {
    const spec = Object.hasOwn(keys, name) ? keys[name] : undefined;
    if (spec) {
      diagnostics.push(...checkValue(`${parent}.${name}`, child, spec));
    } else if (warnUnknown) {
      const help = didYouMean(name, Object.keys(keys));
      diagnostics.push({
        severity: 'warning',
        code: 'config-unknown-key',
        message: `\`${parent}.${name}\` is not a known config key`,
        range: child.keyRange ?? child.range,
        ...(help ? { help } : {}),
      });
    }
  }
  return diagnostics;
}

function checkValue(name: string, entry: Located, spec: ConfigKeySpec): Diagnostic[] {
  const wrong = typeMismatch(entry.value, spec.type);
  if (!wrong) return [];
  const range = locate(entry, wrong.path);
  const oneOf = spec.type.kind === 'string' && spec.type.oneOf && typeof entry.value === 'string' ? spec.type.oneOf : undefined;
  const help = oneOf ? didYouMean(entry.value as string, oneOf) : undefined;
  return [
    {
      severity: 'error',
      code: 'config-type',
      message: `\`${name}${wrong.path}\` must be ${wrong.expected}, but it is ${wrong.actual}`,
      range,
      ...(help ? { help } : {}),
    },
  ];
}

/** The range of `[i]` inside a located list (the item that is wrong), else the whole value. */
function locate(entry: Located, path: string): Located['range'] {
  const match = /^\[(\d+)\]/.exec(path);
  if (!match) return entry.range;
  const item = entry.items?.[Number(match[1])];
  return item ? locate(item, path.slice(match[0].length)) : entry.range;
}

const consumerNoun = (consumer: ConfigConsumer): string =>
  consumer === 'inference' || consumer === 'ode_pairs' || consumer === 'synth' ? 'stage' : 'trainer';
