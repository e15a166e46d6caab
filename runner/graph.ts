// The compiled form of a pipeline: a DAG of tasks with every value resolved. The compiler
// produces it, `plan` prints it, the runner executes it. Nothing here refers to syntax except
// the ranges kept for diagnostics.

import type { SourceRange } from '../grammar/ast.js';

/** Artifact types an output can have; an input must reference an output of the expected type. */
export type ArtifactType = 'dataset' | 'checkpoint' | 'trajectories' | 'videos' | 'metrics' | 'file' | 'dir';

/** A fully resolved value (no references, no interpolation left). */
export type Value = string | number | boolean | null | readonly Value[] | { readonly [key: string]: Value };

export interface TaskOutput {
  readonly name: string;
  readonly type: ArtifactType;
  /** A user-visible path the finished output is copied to (`publish ... to`). */
  readonly publish?: string;
  /** For declared outputs (`output x: file = "out.txt"`): where the command writes it, relative to its work dir. */
  readonly path?: string;
}

/** Where one input's artifact comes from. */
export type InputSource =
  /** Produced by another task of this graph. */
  | { readonly kind: 'task'; readonly task: string; readonly output: string }
  /** An existing file or directory (`provide`, `--use`, or a literal path input). */
  | { readonly kind: 'path'; readonly path: string };

export interface TaskInput {
  readonly name: string;
  readonly type: ArtifactType;
  /** One source, or several for a fan-in (`ode[*].trajectories`), in fan-out order. */
  readonly sources: readonly InputSource[];
  readonly fanIn: boolean;
}

export interface Resources {
  readonly cpus: number;
  readonly gpus: number;
  /** Bytes; 0 means no stated need. */
  readonly memory: number;
  /** The stage's own `device` ("cpu", "cuda", "cuda:N", "auto"); absent: the run's `--device`. */
  readonly device?: string;
}

export interface ResolvedConfig {
  /** The chosen YAML file (relative to the project root). */
  readonly path: string;
  /** default_config.yaml merged under the chosen file, plus in-pipeline overrides: what the trainer reads. */
  readonly values: { readonly [key: string]: Value };
}

export interface Task {
  /** Unique within the graph: the stage name, with `[i]` for a fan-out member (`ode[2]`). */
  readonly id: string;
  readonly stage: string;
  readonly kind: string;
  /** Fan-out variable binding of this member, if any. */
  readonly fanOut?: { readonly variable: string; readonly value: Value; readonly index: number };
  /** Resolved stage parameters (everything set in the stage body that is not an input or resource). */
  readonly params: { readonly [key: string]: Value };
  readonly config?: ResolvedConfig;
  readonly inputs: readonly TaskInput[];
  readonly outputs: readonly TaskOutput[];
  /** Ids of the tasks this one reads from, sorted. */
  readonly deps: readonly string[];
  readonly resources: Resources;
  readonly retries: number;
  /** Cache key (hex sha256), chained over the keys of `deps`. */
  readonly key: string;
  /** The parts the key was computed from, for `explain` (canonical JSON-able). */
  readonly keyParts: { readonly [part: string]: Value };
  /** Where the stage was declared. */
  readonly range: SourceRange;
}

export interface TaskGraph {
  readonly pipeline: string;
  /** The file the graph was compiled from. */
  readonly file: string;
  /** Resolved params (defaults plus --set). */
  readonly params: { readonly [name: string]: Value };
  /** Tasks in a topological order (every task after its deps). */
  readonly tasks: readonly Task[];
  /** Ids of the default targets (all tasks when the pipeline names none). */
  readonly defaults: readonly string[];
}
