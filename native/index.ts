// The native engine from TypeScript: the loader of the addon and the types of its whole API.
//
// The addon is native/build/Release/cfpipe_native.node, built by `npm run build:native` (part of
// `npm run setup`). It is found from the package root, wherever this file's compiled JS sits
// (dist/native/index.js in the repository, or elsewhere when bundled), and can be overridden with
// CFPIPE_NATIVE_ADDON=/path/to/addon.node. A CUDA addon (cfpipe_cuda.node) is preferred when it
// exists and loads; otherwise the CPU addon is used and the reason is kept in engineInfo().
//
// Native failures arrive as Error objects with `code` 'CFP_NATIVE' and the C++ `file`/`line`;
// bad arguments as TypeError with code 'CFP_INVALID_ARGUMENT'. Long jobs run on their own native
// thread, report progress, and stop at the next step boundary when their AbortSignal fires
// (writing a checkpoint first); the promise then resolves with `cancelled: true`.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Tensors and safetensors

/** safetensors element types the engine reads and writes. */
export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'U64';

/** Element storage per dtype: F16/BF16 are raw 16-bit patterns in a Uint16Array. */
export type TensorData = Float32Array | Uint16Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | BigUint64Array;

/** A tensor to write. F32 needs a Float32Array; F16/BF16 take a Uint16Array of raw bits or a
 *  Float32Array (converted, round to nearest even). `dtype` defaults to F32. */
export interface TensorInput {
  readonly name: string;
  readonly dtype?: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** A tensor read from a file (its data is a fresh copy the caller owns). */
export interface Tensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsContent {
  /** The file's __metadata__ (string values only, as the format requires). */
  metadata: Record<string, string>;
  /** In data order. */
  tensors: Tensor[];
}

export interface ReadOptions {
  /** Convert F16/BF16/F64 tensors to Float32Array data (their dtype field keeps the stored type). */
  toFloat32?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/** Name prefixes of checkpoint weights (upstream `generator` / `generator_ema` dict keys). */
export const GENERATOR_PREFIX = 'generator.';
export const GENERATOR_EMA_PREFIX = 'generator_ema.';
export const CRITIC_PREFIX = 'critic.';

export interface CheckpointInput {
  step: number;
  /** Names carry the prefixes above, e.g. `generator.model.blocks.0.self_attn.q.weight`. */
  weights: readonly TensorInput[];
  /** Optimizer moments, EMA shadows, RNG counters, ... */
  state?: readonly TensorInput[];
  /** Scalar training state; keys must not start with `cfpipe.`. */
  meta?: Readonly<Record<string, string>>;
}

export interface CheckpointPaths {
  step: number;
  weightsPath: string;
  statePath: string;
}

export interface LoadedCheckpoint extends CheckpointPaths {
  meta: Record<string, string>;
  weights: Tensor[];
  state: Tensor[];
}

export interface LatestCheckpoint {
  /** The newest checkpoint that verifies, or null. */
  checkpoint: LoadedCheckpoint | null;
  /** Why newer checkpoints were skipped (corrupt, truncated, mismatched). */
  skipped: string[];
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

// ---------------------------------------------------------------------------------------------
// Jobs

export interface JobProgress {
  /** Steps completed (absolute: a resumed job continues the count). */
  step: number;
  total: number;
  metrics: Record<string, number>;
  /** Set when a checkpoint was written at this step: the path of its state file. */
  checkpoint?: string;
}

export interface JobOptions {
  /** Cancels cooperatively: the job stops at its next step boundary and resolves with cancelled: true. */
  signal?: AbortSignal;
  /** Called on the JS thread; if it throws, the job is cancelled and the promise rejects with that error. */
  onProgress?: (progress: JobProgress) => void;
}

export interface FitLinearOptions {
  features?: number;
  samples?: number;
  batch?: number;
  /** Total steps; a resumed run continues up to this count. */
  steps?: number;
  lr?: number;
  momentum?: number;
  seed?: number;
  /** Write a checkpoint every N steps (0: only at the end and on cancel). Needs workDir. */
  checkpointEvery?: number;
  /** Newest checkpoints kept in workDir (0 keeps all; default 3). */
  keepCheckpoints?: number;
  progressEvery?: number;
  workDir?: string;
  /** Continue from the newest valid checkpoint in workDir (starts fresh when there is none). */
  resume?: boolean;
  /** Own data instead of the seeded synthetic problem: samples*features and samples values. */
  x?: Float32Array;
  y?: Float32Array;
}

export interface FitLinearResult {
  step: number;
  cancelled: boolean;
  /** Full-data mean squared error of the final parameters. */
  loss: number;
  weight: Float32Array;
  bias: number;
  /** State file of the last checkpoint written or resumed from. */
  checkpoint?: string;
  resumedFrom?: number;
}

// ---------------------------------------------------------------------------------------------
// The model

/** A DiT config: a preset plus overrides (every dimension is a parameter; core/model.h). */
export interface ModelConfigInput {
  preset?: 'tiny' | 'wan_1_3b';
  /** k: 1 = frame-wise, 3 = chunk-wise. */
  framesPerBlock?: number;
  channels?: number;
  patchT?: number;
  patchH?: number;
  patchW?: number;
  dim?: number;
  ffnDim?: number;
  heads?: number;
  layers?: number;
  freqDim?: number;
  textDim?: number;
  textLen?: number;
  frames?: number;
  height?: number;
  width?: number;
  ropeTheta?: number;
  eps?: number;
}

export type ModelConfig = Required<Omit<ModelConfigInput, 'preset'>>;

export interface ParamEntry {
  /** Upstream name, e.g. `model.blocks.0.self_attn.q.weight`. */
  name: string;
  shape: number[];
  /** Element offset in the flat parameter buffer. */
  offset: number;
}

export interface ParamTable {
  config: ModelConfig;
  count: number;
  params: ParamEntry[];
}

export interface ModelForwardOptions {
  config: ModelConfigInput;
  /** Flat parameters, `count` values in table order. */
  params: Float32Array;
  batch?: number;
  /** Latent frames (default: config.frames). */
  frames?: number;
  /** [batch, frames, channels, height, width] */
  x: Float32Array;
  /** [batch, frames] timesteps in [0, 1000] */
  t: Float32Array;
  /** [batch, textLen, textDim] */
  text: Float32Array;
  mask?: 'full' | 'block_causal';
  /** CPU threads (0: all cores). */
  threads?: number;
}

// ---------------------------------------------------------------------------------------------
// Training and sampling (core/trainer.h, binding/train.cpp, binding/sample.cpp)

export type TrainerName = 'diffusion' | 'ode' | 'consistency_distillation' | 'score_distillation';

/** A weights file and the tensor-name prefix to read (default: generator., then generator_ema., then bare names). */
export type WeightsSource = string | { path: string; prefix?: string };

export interface TrainData {
  /** Rows (latents, trajectories, or prompts for DMD). */
  count: number;
  /** Trajectory slots S (ode: S = denoisingSteps.length + 2); 1 otherwise. */
  slots?: number;
  /** Latents [count, F, C, H, W] or trajectories [count, S, F, C, H, W]; not used by score_distillation. */
  samples?: Float32Array;
  /** Text embeddings [count, textLen, textDim], one per row. */
  text: Float32Array;
  /** The negative prompt's embedding [textLen, textDim] (CD teacher and DMD real score CFG). */
  textUncond?: Float32Array;
}

export interface TrainOptions {
  trainer: TrainerName;
  /** The trained network; framesPerBlock is num_frame_per_block. */
  config: ModelConfigInput;
  /** diffusion: teacher forcing (the AR teacher); otherwise plain flow matching under `causal` ? block-causal : full mask. */
  teacherForcing?: boolean;
  causal?: boolean;
  /** Total optimizer steps; a resumed run continues up to this count. */
  steps: number;
  batch?: number;
  seed?: number;
  lr?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  lrCritic?: number;
  beta1Critic?: number;
  beta2Critic?: number;
  weightDecayCritic?: number;
  maxGradNorm?: number;
  maxGradNormCritic?: number;
  emaWeight?: number;
  /** First step with an EMA (diffusion, ode, DMD); consistency distillation's EMA target starts at 0. */
  emaStartStep?: number;
  dfakeGenUpdateRatio?: number;
  /** model_kwargs.timestep_shift: the generator's training grid. */
  timestepShift?: number;
  /** Grid of the DMD scores' x0 conversion (upstream's wrapper default 8). */
  scoreTimestepShift?: number;
  /** timestep_shift: the DMD/critic timestep draw. */
  dmdTimestepShift?: number;
  /** Warped few-step list (ode, DMD), e.g. [1000, 937.5, 833.33, 625]. */
  denoisingSteps?: readonly number[];
  guidanceScale?: number;
  /** discrete_cd_N. */
  cdSteps?: number;
  contextNoise?: number;
  bf16Timesteps?: boolean;
  init?: WeightsSource;
  teacher?: WeightsSource;
  realScore?: WeightsSource;
  fakeScore?: WeightsSource;
  data: TrainData;
  workDir?: string;
  resume?: boolean;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  progressEvery?: number;
  /** CPU threads (0: all cores); results do not depend on it. */
  threads?: number;
  /** Compute device: 'cpu' (default), 'cuda' (= cuda:0), 'cuda:N', or 'auto' (CUDA when the CUDA addon finds a device). */
  device?: DeviceSpec;
  /** Final weights: generator.* and, when the EMA is active, generator_ema.* (a checked safetensors file). */
  outputPath?: string;
  outputMetadata?: Readonly<Record<string, string>>;
}

export interface TrainResult {
  step: number;
  cancelled: boolean;
  /** Last loss (DMD: the critic's). */
  loss: number;
  generatorLoss: number;
  emaActive: boolean;
  params: number;
  /** Wall time of this call's steps. */
  seconds: number;
  /** The backend that ran the job: 'cpu' or 'cuda:N'. */
  backend: string;
  /** CUDA graphs recorded and replayed during the job (absent when none). */
  cudaGraphs?: CudaGraphCounts;
  resumedFrom?: number;
  checkpoint?: string;
  outputPath?: string;
}

export type SampleMode = 'few_step' | 'many_step' | 'ode';

export interface SampleOptions {
  mode: SampleMode;
  config: ModelConfigInput;
  weights: WeightsSource;
  count: number;
  /** Rows per batch (default 1). */
  batch?: number;
  seed?: number;
  /** Noise stream per row (default 0..count-1): a batch starting at row r uses stream rowIds[r]. */
  rowIds?: readonly number[];
  threads?: number;
  /** Compute device, as in TrainOptions.device. */
  device?: DeviceSpec;
  /** [count, textLen, textDim] */
  text: Float32Array;
  /** [textLen, textDim]: needed for CFG (many_step, ode). */
  textUncond?: Float32Array;
  /** The generator grid's shift (model_kwargs.timestep_shift). */
  timestepShift?: number;
  /** few_step: the warped step list, an optional one for block 0, the cache-write timestep. */
  steps?: readonly number[];
  firstBlockSteps?: readonly number[];
  contextNoise?: number;
  /** many_step / ode */
  numSteps?: number;
  shift?: number;
  guidance?: number;
  solver?: 'unipc' | 'euler';
  /** ode: clean clips [count, F, C, H, W], snapshot steps, and the integration mode. */
  clean?: Float32Array;
  snapshots?: readonly number[];
  odeMode?: 'blockwise_kv' | 'full';
}

export interface SampleResult {
  cancelled: boolean;
  /** [count, F, C, H, W] latents, or [count, S, F, C, H, W] trajectories (ode). */
  output?: Float32Array;
  /** Per row: network calls of its batch (each call processes the whole batch). */
  calls?: Float32Array;
  denoiseCalls?: Float32Array;
  /** Per row: its share of the batch's generation time, and the batch's first-block latency. */
  seconds?: Float32Array;
  firstBlockSeconds?: Float32Array;
  totalSeconds?: number;
  /** Latent frames generated per second (no decoding). */
  framesPerSecond?: number;
  /** The backend that ran the job: 'cpu' or 'cuda:N'. */
  backend?: string;
  /** CUDA graphs recorded and replayed during the job (absent when none). */
  cudaGraphs?: CudaGraphCounts;
}

/** Model forwards and backwards the CUDA backend recorded as graphs, and graph replays. */
export interface CudaGraphCounts {
  recorded: number;
  replayed: number;
}

/** "; CUDA graphs: 4 recorded, 31996 replays" for a job's log line, or "" when it used none. */
export function cudaGraphsNote(counts: CudaGraphCounts | undefined): string {
  return counts ? `; CUDA graphs: ${counts.recorded} recorded, ${counts.replayed} replays` : '';
}

// ---------------------------------------------------------------------------------------------
// Errors and engine information

export type NativeErrorCode = 'CFP_NATIVE' | 'CFP_NATIVE_OOM' | 'CFP_NATIVE_UNEXPECTED' | 'CFP_INVALID_ARGUMENT';

/** What native failures look like in JS. */
export interface NativeError extends Error {
  code: NativeErrorCode;
  /** The C++ source of a CFP_NATIVE error, relative to the repository (e.g. native/core/checkpoint.cpp). */
  file?: string;
  line?: number;
}

export function isNativeError(e: unknown): e is NativeError {
  if (!(e instanceof Error)) return false;
  const code: unknown = (e as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('CFP_');
}

export type Backend = 'cpu' | 'cuda';

/** A job's compute device: the CLI's --device values ('cuda:N' counts within CUDA_VISIBLE_DEVICES). */
export type DeviceSpec = 'cpu' | 'cuda' | 'auto' | `cuda:${number}`;

export interface EngineInfo {
  engine: string;
  napiVersion: number;
  /** What device 'auto' runs on: 'cuda' when the CUDA addon is loaded and sees a device. */
  backend: Backend;
  /** Backends usable now ('cuda' first when present). */
  backends: Backend[];
  /** True when the loaded addon was built with the CUDA backend (cfpipe_cuda.node). */
  cuda: boolean;
  /** CUDA devices visible to the CUDA addon (0 in the CPU addon). */
  cudaDevices: number;
  /** Name of CUDA device 0, e.g. 'NVIDIA H200'. */
  cudaDevice?: string;
  /** The CUDA GEMM engine compiled in: 'cublaslt' or 'tiled'. */
  cudaGemm?: string;
  /** Why no CUDA device can be used (no driver, no device, or a CPU-only addon). */
  cudaUnavailable?: string;
  compiler: string;
  buildType: 'Release' | 'Debug';
  hardwareThreads: number;
  /** The .node file that was loaded. */
  addonPath: string;
  /** Why a preferred addon (CUDA) was not used, when one was found but failed to load. */
  fallbackReason?: string;
}

/** The raw addon surface (what the C++ binding exports). Prefer the wrapper functions below. */
export interface NativeAddon {
  version(): Omit<EngineInfo, 'addonPath' | 'fallbackReason'>;
  readSafetensors(path: string, options?: ReadOptions): SafetensorsContent;
  writeSafetensors(path: string, tensors: readonly TensorInput[], metadata?: Readonly<Record<string, string>>): void;
  writeCheckedSafetensors(path: string, tensors: readonly TensorInput[], metadata: Readonly<Record<string, string>>, kind: string, step: number): void;
  readCheckedSafetensors(path: string, options?: ReadOptions): SafetensorsContent;
  verifyCheckedSafetensors(path: string): VerifyResult;
  saveCheckpoint(dir: string, checkpoint: CheckpointInput): CheckpointPaths;
  loadCheckpoint(dir: string, step: number, options?: ReadOptions): LoadedCheckpoint;
  latestCheckpoint(dir: string, options?: ReadOptions): LatestCheckpoint;
  listCheckpoints(dir: string): number[];
  pruneCheckpoints(dir: string, keep: number): void;
  fitLinear(options: FitLinearOptions, onProgress?: (progress: JobProgress) => void): NativeJob<FitLinearResult>;
  modelParamTable(config: ModelConfigInput): ParamTable;
  initModelWeights(config: ModelConfigInput, seed: number): Float32Array;
  modelForward(options: ModelForwardOptions, onProgress?: (progress: JobProgress) => void): NativeJob<Float32Array | null>;
  train(options: TrainOptions, onProgress?: (progress: JobProgress) => void): NativeJob<TrainResult>;
  sample(options: SampleOptions, onProgress?: (progress: JobProgress) => void): NativeJob<SampleResult>;
}

/** A started native job. */
export interface NativeJob<T> {
  promise: Promise<T>;
  cancel(): void;
}

// ---------------------------------------------------------------------------------------------
// Loader

/** Thrown when no addon could be found or loaded. */
export class NativeNotBuiltError extends Error {
  override readonly name = 'NativeNotBuiltError';
  readonly code = 'CFP_NATIVE_NOT_BUILT';
  constructor(readonly looked: readonly string[], detail?: string) {
    super(`native engine not built: run npm run setup (or npm run build:native)${detail ? `; ${detail}` : ''}. Looked for: ${looked.join(', ')}`);
  }
}

/** The repository/package root: the nearest ancestor holding package.json named cfpipe and native/. */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'native', 'CMakeLists.txt'))) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'cfpipe') return dir;
      } catch {
        // not a readable package.json: keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new NativeNotBuiltError([], `no cfpipe package root above ${from}`);
    dir = parent;
  }
}

/** Candidate addons in order of preference. */
export function addonCandidates(root: string = packageRoot()): { path: string; backend: Backend }[] {
  const override = process.env['CFPIPE_NATIVE_ADDON'];
  if (override) return [{ path: override, backend: override.includes('cuda') ? 'cuda' : 'cpu' }];
  const release = join(root, 'native', 'build', 'Release');
  const out: { path: string; backend: Backend }[] = [];
  if (process.env['CFPIPE_BACKEND'] !== 'cpu') out.push({ path: join(release, 'cfpipe_cuda.node'), backend: 'cuda' });
  out.push({ path: join(release, 'cfpipe_native.node'), backend: 'cpu' });
  return out;
}

let loaded: { addon: NativeAddon; path: string; fallbackReason?: string } | undefined;

/** Loads the addon once (later calls return the same one). Throws NativeNotBuiltError. */
export function loadNative(): NativeAddon {
  if (loaded) return loaded.addon;
  const require = createRequire(import.meta.url);
  const candidates = addonCandidates();
  const failures: string[] = [];
  for (const c of candidates) {
    if (!existsSync(c.path)) continue;
    try {
      const addon = require(c.path) as NativeAddon;
      loaded = { addon, path: c.path };
      if (failures.length > 0) loaded.fallbackReason = failures.join('; ');
      return addon;
    } catch (e) {
      failures.push(`${c.path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new NativeNotBuiltError(
    candidates.map((c) => c.path),
    failures.length > 0 ? `found but could not load: ${failures.join('; ')}` : undefined,
  );
}

/** True when an addon exists and loads. */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

/** Build and backend information of the loaded engine. */
export function engineInfo(): EngineInfo {
  const addon = loadNative();
  const info: EngineInfo = { ...addon.version(), addonPath: loaded?.path ?? '' };
  if (loaded?.fallbackReason) info.fallbackReason = loaded.fallbackReason;
  return info;
}

// ---------------------------------------------------------------------------------------------
// The API (each function loads the addon on first use)

export const readSafetensors = (path: string, options?: ReadOptions): SafetensorsContent => loadNative().readSafetensors(path, options);

/** Writes atomically (temp file, fsync, rename, fsync of the directory). */
export const writeSafetensors = (path: string, tensors: readonly TensorInput[], metadata?: Readonly<Record<string, string>>): void =>
  loadNative().writeSafetensors(path, tensors, metadata);

/** A self-verifying safetensors file (checksum in __metadata__), e.g. exported weights. */
export const writeCheckedSafetensors = (
  path: string,
  tensors: readonly TensorInput[],
  metadata: Readonly<Record<string, string>>,
  kind: string,
  step: number,
): void => loadNative().writeCheckedSafetensors(path, tensors, metadata, kind, step);

export const readCheckedSafetensors = (path: string, options?: ReadOptions): SafetensorsContent =>
  loadNative().readCheckedSafetensors(path, options);

export const verifyCheckedSafetensors = (path: string): VerifyResult => loadNative().verifyCheckedSafetensors(path);

/** Writes `<dir>/step-NNNNNNNN.weights.safetensors` then `.state.safetensors` (the commit marker). */
export const saveCheckpoint = (dir: string, checkpoint: CheckpointInput): CheckpointPaths => loadNative().saveCheckpoint(dir, checkpoint);

export const loadCheckpoint = (dir: string, step: number, options?: ReadOptions): LoadedCheckpoint =>
  loadNative().loadCheckpoint(dir, step, options);

/** The newest checkpoint in `dir` that verifies; invalid newer ones are listed in `skipped`. */
export const latestCheckpoint = (dir: string, options?: ReadOptions): LatestCheckpoint => loadNative().latestCheckpoint(dir, options);

/** Steps with a state file in `dir` (unverified), ascending; [] when `dir` does not exist. */
export const listCheckpoints = (dir: string): number[] => loadNative().listCheckpoints(dir);

export const pruneCheckpoints = (dir: string, keep: number): void => loadNative().pruneCheckpoints(dir, keep);

/** Runs a started native job under a JobOptions' signal; the signal's listener is removed at the end. */
export async function runJob<T>(start: (onProgress?: (p: JobProgress) => void) => NativeJob<T>, options: JobOptions = {}): Promise<T> {
  const job = start(options.onProgress);
  const { signal } = options;
  if (!signal) return job.promise;
  const onAbort = (): void => job.cancel();
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await job.promise;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The deterministic resumable test workload: SGD least squares with checkpoints (core/fit_linear.h). */
export const fitLinear = (options: FitLinearOptions, jobOptions: JobOptions = {}): Promise<FitLinearResult> =>
  runJob((onProgress) => loadNative().fitLinear(options, onProgress), jobOptions);

/** The parameter table of a config (validates it: a cfp::Error names the inconsistent field). */
export const modelParamTable = (config: ModelConfigInput): ParamTable => loadNative().modelParamTable(config);

/** Seeded initial weights, flat in table order. */
export const initModelWeights = (config: ModelConfigInput, seed: number): Float32Array => loadNative().initModelWeights(config, seed);

/** Weights as checkpoint tensors with upstream names under a prefix (views into `params`, no copy). */
export function weightTensors(table: ParamTable, params: Float32Array, prefix: string = GENERATOR_PREFIX): TensorInput[] {
  if (params.length !== table.count) throw new TypeError(`weightTensors: params has ${params.length} values, the table has ${table.count}`);
  return table.params.map((p) => ({
    name: prefix + p.name,
    dtype: 'F32',
    shape: p.shape,
    data: params.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1)),
  }));
}

/** One full-sequence forward (the flow prediction) on a native thread; null when cancelled first. */
export const modelForward = (options: ModelForwardOptions, jobOptions: JobOptions = {}): Promise<Float32Array | null> =>
  runJob((onProgress) => loadNative().modelForward(options, onProgress), jobOptions);

/**
 * Trains with one of the four upstream trainers on a native thread (core/trainer.h): checkpoints
 * every `checkpointEvery` steps in `workDir`, resumes from the newest valid one with `resume`,
 * stops at the next step when `signal` aborts (checkpoint first; resolves with cancelled: true).
 */
export const train = (options: TrainOptions, jobOptions: JobOptions = {}): Promise<TrainResult> =>
  runJob((onProgress) => loadNative().train(options, onProgress), jobOptions);

/** Few-step (students), many-step CFG (teachers) or causal-ODE (ode pairs) generation on a native thread. */
export const sample = (options: SampleOptions, jobOptions: JobOptions = {}): Promise<SampleResult> =>
  runJob((onProgress) => loadNative().sample(options, onProgress), jobOptions);
