// A resolved YAML config (upstream key names, default_config.yaml merged under the stage's file)
// → the native engine's options. Every key the native stages read is mapped here, in one place:
//
//   model_kwargs.{dim, num_layers, num_heads, ffn_dim, freq_dim, text_dim, text_len, patch_size,
//                 frames, height, width, channels, eps}     the DiT's size (cfpipe's model-size block)
//   model_kwargs.timestep_shift    the generator's 1000-point training grid (upstream wrapper default 8)
//   num_frame_per_block            k (1 frame-wise, 3 chunk-wise; the base model: one block = the clip)
//   trainer, teacher_forcing, causal, max_steps (the stage's `steps`), batch_size, seed
//   lr, beta1, beta2, weight_decay, lr_critic, beta1_critic, beta2_critic,
//   max_grad_norm_generator, max_grad_norm_critic, ema_weight, ema_start_step, dfake_gen_update_ratio
//   denoising_step_list (+ warp_denoising_step), timestep_shift, guidance_scale
//   (real_guidance_scale overrides it for DMD), discrete_cd_N, context_noise, num_train_timestep
//   negative_prompt               the unconditional text of CFG
//
// Unlike upstream, seed 0 is a seed like any other (upstream draws a random one), so reruns agree.

import { availableParallelism } from 'node:os';
import { FrozenTextEncoder } from '../domain/text.js';
import type { Task, Value } from '../graph.js';
import type { ModelConfigInput, TrainerName, TrainOptions } from '../../native/index.js';
import { KindError } from './types.js';

export type ConfigValues = { readonly [key: string]: Value };

const TRAINERS: readonly TrainerName[] = ['diffusion', 'ode', 'consistency_distillation', 'score_distillation'];

function get(values: ConfigValues, path: string): Value | undefined {
  let v: Value | undefined = values;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as ConfigValues)[part];
  }
  return v;
}

/** A number key (with a default, or required when `fallback` is undefined). */
export function numberKey(kind: string, values: ConfigValues, path: string, fallback?: number): number {
  const v = get(values, path) ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new KindError(`${kind}: config \`${path}\` must be a number, got ${JSON.stringify(v ?? null)}`);
  return v;
}

export function intKey(kind: string, values: ConfigValues, path: string, fallback: number | undefined, min: number): number {
  const v = numberKey(kind, values, path, fallback);
  if (!Number.isInteger(v) || v < min) throw new KindError(`${kind}: config \`${path}\` must be an integer ≥ ${min}, got ${v}`);
  return v;
}

export function boolKey(kind: string, values: ConfigValues, path: string, fallback: boolean): boolean {
  const v = get(values, path) ?? fallback;
  if (typeof v !== 'boolean') throw new KindError(`${kind}: config \`${path}\` must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function stringKey(kind: string, values: ConfigValues, path: string): string | undefined {
  const v = get(values, path);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new KindError(`${kind}: config \`${path}\` must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** The DiT size of a config (model_kwargs) with its block size k. */
export function modelConfigFromValues(kind: string, values: ConfigValues): ModelConfigInput {
  const mk = (key: string, fallback: number) => intKey(kind, values, `model_kwargs.${key}`, fallback, 1);
  const patch = get(values, 'model_kwargs.patch_size') ?? [1, 2, 2];
  if (!Array.isArray(patch) || patch.length !== 3 || !patch.every((p) => typeof p === 'number' && Number.isInteger(p) && p >= 1)) {
    throw new KindError(`${kind}: config \`model_kwargs.patch_size\` must be three positive integers [t, h, w], got ${JSON.stringify(patch)}`);
  }
  if (patch[0] !== 1) throw new KindError(`${kind}: config \`model_kwargs.patch_size\` must have a temporal patch of 1 (as Wan2.1), got ${patch[0]}`);
  const frames = mk('frames', 9);
  return {
    preset: 'tiny',
    framesPerBlock: intKey(kind, values, 'num_frame_per_block', 1, 1),
    dim: mk('dim', 64),
    layers: mk('num_layers', 4),
    heads: mk('num_heads', 4),
    ffnDim: mk('ffn_dim', 256),
    freqDim: mk('freq_dim', 32),
    textDim: mk('text_dim', 32),
    textLen: mk('text_len', 8),
    patchT: 1,
    patchH: patch[1] as number,
    patchW: patch[2] as number,
    frames,
    height: mk('height', 8),
    width: mk('width', 8),
    channels: mk('channels', 48),
    eps: numberKey(kind, values, 'model_kwargs.eps', 1e-6),
  };
}

/** The generator grid's shift: model_kwargs.timestep_shift (upstream's wrapper defaults to 8). */
export const generatorShift = (kind: string, values: ConfigValues): number => numberKey(kind, values, 'model_kwargs.timestep_shift', 8.0);

/**
 * The warped few-step list (spec §3.3): nominal d → T_ext[1000 - d] on the shift-s training grid
 * t_i = 1000·s·u/(1 + (s-1)u), u = 1 - i/1000, T_ext[1000] = 0; a trailing 0 is dropped.
 */
export function warpedSteps(kind: string, nominal: readonly number[], warp: boolean, shift: number, trainTimesteps = 1000): number[] {
  const out = nominal.map((d) => {
    if (!Number.isInteger(d) || d < 0 || d > trainTimesteps) throw new KindError(`${kind}: denoising step ${d} must be an integer in [0, ${trainTimesteps}]`);
    if (!warp) return d;
    const i = trainTimesteps - d;
    if (i === trainTimesteps) return 0;
    const u = 1 - i / trainTimesteps;
    return (trainTimesteps * shift * u) / (1 + (shift - 1) * u);
  });
  if (out.length > 0 && out[out.length - 1] === 0) out.pop();
  return out;
}

/** denoising_step_list (warped when warp_denoising_step), or undefined when the config has none. */
export function denoisingSteps(kind: string, values: ConfigValues, key = 'denoising_step_list'): number[] | undefined {
  const list = get(values, key);
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'number')) throw new KindError(`${kind}: config \`${key}\` must be a list of integers, got ${JSON.stringify(list)}`);
  const steps = warpedSteps(kind, list as number[], boolKey(kind, values, 'warp_denoising_step', false), generatorShift(kind, values), intKey(kind, values, 'num_train_timestep', 1000, 1));
  if (steps.length === 0) throw new KindError(`${kind}: config \`${key}\` has no steps`);
  return steps;
}

export function trainerOf(kind: string, values: ConfigValues, param: Value | undefined): TrainerName {
  const fromConfig = stringKey(kind, values, 'trainer');
  if (param !== undefined && param !== null && typeof param !== 'string') throw new KindError(`${kind}: \`trainer\` must be a string`);
  if (param && fromConfig && param !== fromConfig) throw new KindError(`${kind}: the stage says trainer = "${param}" but its config says trainer: ${fromConfig}`);
  const name = (param as string | undefined) ?? fromConfig;
  if (name === undefined) throw new KindError(`${kind}: no trainer: set \`trainer\` in the config (diffusion, ode, score_distillation or consistency_distillation)`);
  if (!TRAINERS.includes(name as TrainerName)) throw new KindError(`${kind}: unknown trainer "${name}"; expected one of ${TRAINERS.join(', ')}`);
  return name as TrainerName;
}

/** Everything of TrainOptions the config decides (data, weights, paths and threads come from the stage). */
export function trainSettings(kind: string, values: ConfigValues, trainer: TrainerName, steps: number): Omit<TrainOptions, 'data'> {
  if (intKey(kind, values, 'num_train_timestep', 1000, 1) !== 1000) throw new KindError(`${kind}: config \`num_train_timestep\` must be 1000 (the engine's grids are 1000 points)`);
  const lr = numberKey(kind, values, 'lr', 2e-6);
  const beta1 = numberKey(kind, values, 'beta1', 0.9);
  const beta2 = numberKey(kind, values, 'beta2', 0.999);
  const guidance = numberKey(kind, values, 'guidance_scale', 3.0);
  const settings: Omit<TrainOptions, 'data'> = {
    trainer,
    config: modelConfigFromValues(kind, values),
    teacherForcing: boolKey(kind, values, 'teacher_forcing', false),
    causal: boolKey(kind, values, 'causal', true),
    steps,
    batch: intKey(kind, values, 'batch_size', 1, 1),
    seed: intKey(kind, values, 'seed', 0, 0),
    lr,
    beta1,
    beta2,
    weightDecay: numberKey(kind, values, 'weight_decay', 0.01),
    lrCritic: numberKey(kind, values, 'lr_critic', lr),
    beta1Critic: numberKey(kind, values, 'beta1_critic', beta1),
    beta2Critic: numberKey(kind, values, 'beta2_critic', beta2),
    maxGradNorm: numberKey(kind, values, 'max_grad_norm_generator', 10),
    maxGradNormCritic: numberKey(kind, values, 'max_grad_norm_critic', 10),
    emaWeight: numberKey(kind, values, 'ema_weight', 0.99),
    emaStartStep: intKey(kind, values, 'ema_start_step', 2_000_000_000, 0),
    dfakeGenUpdateRatio: intKey(kind, values, 'dfake_gen_update_ratio', 5, 1),
    timestepShift: generatorShift(kind, values),
    dmdTimestepShift: numberKey(kind, values, 'timestep_shift', 5.0),
    guidanceScale: trainer === 'score_distillation' ? numberKey(kind, values, 'real_guidance_scale', guidance) : guidance,
    cdSteps: intKey(kind, values, 'discrete_cd_N', 48, 2),
    contextNoise: numberKey(kind, values, 'context_noise', 0),
  };
  const steps_ = denoisingSteps(kind, values);
  if (steps_) settings.denoisingSteps = steps_;
  if ((trainer === 'ode' || trainer === 'score_distillation') && !steps_) throw new KindError(`${kind}: the ${trainer} trainer needs \`denoising_step_list\` in its config`);
  return settings;
}

/** The frozen text encoder at the config's text size (model_kwargs.text_len / text_dim). */
export function textEncoderFor(kind: string, values: ConfigValues): FrozenTextEncoder {
  const m = modelConfigFromValues(kind, values);
  return new FrozenTextEncoder({ textLen: m.textLen ?? 8, textDim: m.textDim ?? 32 });
}

/** negative_prompt: the unconditional text of CFG (empty when the config has none). */
export const negativePrompt = (kind: string, values: ConfigValues): string => stringKey(kind, values, 'negative_prompt') ?? '';

/** Native threads for a task: its declared cpus, at most the machine's cores. */
export const threadsFor = (task: Task): number => Math.max(1, Math.min(task.resources.cpus, availableParallelism()));

/** Checks a dataset's clip shape [F, C, H, W] against the model's. */
export function checkClipShape(kind: string, what: string, shape: readonly number[], model: ModelConfigInput): void {
  const want = [model.frames, model.channels, model.height, model.width];
  if (shape.join() !== want.join()) {
    throw new KindError(`${kind}: ${what} holds clips of [${shape.join(', ')}] (F, C, H, W) but the config's model_kwargs make [${want.join(', ')}]`);
  }
}
