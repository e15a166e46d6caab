// What a caller can tell the compiler besides the file.

export interface CompileOptions {
  /** `--set name=value`: param values as typed on the command line, parsed by the param's type. */
  readonly set?: Readonly<Record<string, string>>;
  /**
   * `--params FILE`: YAML files of param values (paths relative to the working directory), in
   * command-line order: a later file wins over an earlier one, `set` over every file.
   */
  readonly paramFiles?: readonly string[];
  /** `--use stage.output=path`: provide outputs instead of computing them. */
  readonly use?: Readonly<Record<string, string>>;
  /** GPUs the plan may use; detected with `nvidia-smi -L` when absent (and only when a stage asks). */
  readonly gpusAvailable?: number;
  /** Project root: configs, provided paths and publish paths are relative to it. */
  readonly root?: string;
  /** Source texts to use instead of the files on disk (absolute path → text); tests and editors. */
  readonly overlay?: ReadonlyMap<string, string>;
}
