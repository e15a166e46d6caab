// Public face of the registry: stage kinds and config keys, as the compiler and runner see them.

import { STAGE_KINDS, RESOURCE_PROPERTIES, CONFIG_PROPERTIES } from './kinds.js';
import { CONFIG_KEYS, isReadBy, readersOf, TRAINER_NAMES } from './config-keys.js';
import type { StageKindSpec } from './types.js';

export type * from './types.js';
export { STAGE_KINDS, RESOURCE_PROPERTIES, CONFIG_PROPERTIES, CONFIG_KEYS, isReadBy, readersOf, TRAINER_NAMES };

export const kindNames = (): string[] => Object.keys(STAGE_KINDS);

export const getKind = (name: string): StageKindSpec | undefined =>
  Object.hasOwn(STAGE_KINDS, name) ? STAGE_KINDS[name] : undefined;
