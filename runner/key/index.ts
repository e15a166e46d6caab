// Task cache keys: sha256 over the canonical JSON of what determines a task's result. Keys chain
// Merkle-style: a task's parts hold its upstream tasks' keys, so a change anywhere upstream
// reaches every descendant and nothing else.

import { createHash } from 'node:crypto';
import type { Value } from '../graph.js';
import { canonicalJson } from './canonical.js';

export { canonicalJson };

/** Bumped when the meaning of key parts changes: every old key is then stale. */
export const KEY_SCHEMA_VERSION = 1;

/**
 * The native engine's numerics/ABI generation. Bump it when a kernel change alters results, so
 * every native task reruns. (The engine may later report its own; this is the compiler's view.)
 */
export const ENGINE_ABI_VERSION = 'cfpipe-engine/1';

export interface KeyParts {
  readonly [part: string]: Value;
}

export const hashKey = (parts: KeyParts): string => createHash('sha256').update(canonicalJson(parts)).digest('hex');

/** The first 12 hex digits, as plans print keys. */
export const shortKey = (key: string): string => key.slice(0, 12);
