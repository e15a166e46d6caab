// The shapes of the stage-kind registry: what each kind of stage takes (inputs, params,
// resources), what it produces, and which config keys its trainer reads. The compiler validates
// pipelines against these declarations; the runner's task kinds implement them.

import type { ArtifactType, Value } from '../graph.js';

/** The type of a param or config value. `number` accepts integers too. */
export type ValueType =
  | { readonly kind: 'string'; readonly oneOf?: readonly string[] }
  | { readonly kind: 'int' }
  | { readonly kind: 'number' }
  | { readonly kind: 'bool' }
  | { readonly kind: 'list'; readonly items?: ValueType; readonly length?: number }
  | { readonly kind: 'map'; readonly keys?: { readonly [key: string]: ValueType } }
  /** Several shapes are fine (e.g. upstream's `{your key}` placeholders parse as maps). */
  | { readonly kind: 'any' };

export interface InputSpec {
  /** Artifact types the input accepts (most accept one). */
  readonly types: readonly ArtifactType[];
  readonly required: boolean;
  /** Whether several sources are allowed: a fan-in `x[*].out` or a list of references. */
  readonly many: boolean;
  readonly doc: string;
}

export interface ParamSpec {
  readonly type: ValueType;
  readonly required: boolean;
  readonly default?: Value;
  /** False for params that do not change results (checkpoint interval...): left out of the cache key. */
  readonly semantic: boolean;
  readonly doc: string;
}

export interface OutputSpec {
  readonly type: ArtifactType;
  readonly doc: string;
}

/** Who reads a stage's YAML config: a trainer (train stages) or a tool of another kind. */
export type ConfigConsumer =
  | 'diffusion'
  | 'ode'
  | 'score_distillation'
  | 'consistency_distillation'
  | 'ode_pairs'
  | 'inference'
  | 'synth';

export interface ConfigUse {
  readonly required: boolean;
  /** The consumer when fixed by the kind; absent for `train`, whose `trainer` key picks it. */
  readonly consumer?: ConfigConsumer;
}

/** Per-trainer input rules of a `train` stage (the DMD trainer reads prompts, not latents...). */
export interface TrainerInputs {
  /** Inputs the trainer needs, with the types it accepts. */
  readonly required: { readonly [input: string]: readonly ArtifactType[] };
  /** Inputs it may take besides the required ones. */
  readonly optional: { readonly [input: string]: readonly ArtifactType[] };
}

export interface StageKindSpec {
  readonly name: string;
  readonly doc: string;
  readonly inputs: { readonly [name: string]: InputSpec };
  /** Fixed outputs; kinds with `declaredOutputs` take theirs from `output` lines instead. */
  readonly outputs: { readonly [name: string]: OutputSpec };
  readonly declaredOutputs?: { readonly min: number; readonly max: number };
  /** `exec`: any other assignment whose value holds references is an input of any type. */
  readonly openInputs?: boolean;
  readonly params: { readonly [name: string]: ParamSpec };
  readonly config?: ConfigUse;
  readonly trainerInputs?: { readonly [trainer: string]: TrainerInputs };
}

/** One config key: its type, who reads it, and whether it belongs in the cache key. */
export interface ConfigKeySpec {
  readonly type: ValueType;
  /** Consumers that read the key; empty when nothing reads it (upstream leftovers). */
  readonly readBy: readonly ConfigConsumer[] | 'all-trainers';
  /** False for keys that never change results (logging, wandb, gc, sharding layout...). */
  readonly semantic: boolean;
  readonly doc: string;
  /** Keys of a nested map (model_kwargs), each with its own spec. */
  readonly keys?: { readonly [key: string]: ConfigKeySpec };
}
