// `infer`: videos from a checkpoint, as upstream's inference.py (spec §1.11).
//
//   stage infer_dmd: infer { config = "configs/causal_forcing_dmd_framewise.yaml"  model = dmd.model
//                            prompts = clean.prompts  samples = 32  use_ema = true }
//
// A config with `denoising_step_list` samples few-step and streaming with the KV cache (the
// distilled students: warped list, fresh re-noising, a clean cache pass per block, no CFG; one
// video at a time, so the first-block latency is a streaming latency). Without one it samples
// many-step: 50 UniPC steps per block with CFG (`guidance_scale`, negative_prompt) and shift
// `timestep_shift` (the AR teacher; batches of MANY_STEP_BATCH videos, time split evenly).
// `use_ema` reads generator_ema.* instead of generator.*. Video i's noise comes from
// Philox(seed, stream i).
//
// Output `videos` (domain/video_set.ts): decoded by the domain VAE, GIFs (+ mp4 with ffmpeg) named
// after the prompt, videos.safetensors for eval with the sampling figures in its metadata, and
// samples.json: per video the prompt, network forward calls, generation seconds, first-block latency.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaGraphsNote, sample, type DeviceSpec, type SampleOptions } from '../../native/index.js';
import { readPrompts } from '../domain/prompts_file.js';
import { boolParam, geometryFromConfig, intParam } from '../domain/params.js';
import { writeVideoSet, type LabelledClip } from '../domain/video_set.js';
import { denoisingSteps, generatorShift, modelConfigFromValues, negativePrompt, numberKey, textEncoderFor, threadsFor, type ConfigValues } from './native_config.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const KIND = 'infer';
/** Videos per native batch of the many-step teacher. */
export const MANY_STEP_BATCH = 8;
/** UniPC steps of upstream's CausalDiffusionInferencePipeline. */
export const MANY_STEPS = 50;

export interface SampleRecord {
  readonly prompt: string;
  readonly forward_calls: number;
  readonly generation_seconds: number;
  readonly first_block_seconds: number;
}

export const kind: StageKind = {
  name: KIND,
  async run(ctx: KindContext): Promise<void> {
    const { task } = ctx;
    if (task.config === undefined) throw new KindError(`${KIND}: stage \`${task.stage}\` needs a config`);
    const values: ConfigValues = task.config.values;
    const weights = ctx.inputs.model?.[0];
    const promptsPath = ctx.inputs.prompts?.[0];
    const out = ctx.outputs.videos;
    if (weights === undefined || promptsPath === undefined) throw new KindError(`${KIND}: needs inputs \`model\` and \`prompts\``);
    if (out === undefined) throw new KindError(`${KIND}: the runner gave no path for output \`videos\``);
    const useEma = boolParam(KIND, task.params, 'use_ema', false);
    const seed = intParam(KIND, task.params, 'seed', 0);
    const limit = intParam(KIND, task.params, 'samples', 0);
    const frames = intParam(KIND, task.params, 'num_output_frames', 0);
    const model = modelConfigFromValues(KIND, values);
    if (frames !== 0 && frames !== model.frames) {
      throw new KindError(`${KIND}: num_output_frames = ${frames}, but the model's KV cache holds model_kwargs.frames = ${model.frames} latent frames`);
    }
    let prompts = readPrompts(promptsPath).filter((p) => p.length > 0);
    if (limit > 0) prompts = prompts.slice(0, limit);
    if (prompts.length === 0) throw new KindError(`${KIND}: ${promptsPath} holds no prompts`);
    const encoder = textEncoderFor(KIND, values);
    const steps = denoisingSteps(KIND, values);
    const firstBlock = denoisingSteps(KIND, values, 'denoising_step_list_first_chunk');
    const shift = generatorShift(KIND, values);
    const options: SampleOptions = {
      mode: steps ? 'few_step' : 'many_step',
      config: model,
      weights: { path: weights, prefix: useEma ? 'generator_ema.' : 'generator.' },
      count: prompts.length,
      batch: steps ? 1 : MANY_STEP_BATCH,
      seed,
      threads: threadsFor(task),
      device: ctx.device as DeviceSpec,
      text: encoder.encodeBatch(prompts),
      timestepShift: shift,
    };
    if (steps) {
      options.steps = steps;
      if (firstBlock) options.firstBlockSteps = firstBlock;
      options.contextNoise = numberKey(KIND, values, 'context_noise', 0);
    } else {
      options.textUncond = encoder.encode(negativePrompt(KIND, values));
      options.numSteps = MANY_STEPS;
      options.shift = numberKey(KIND, values, 'timestep_shift', 5.0);
      options.guidance = numberKey(KIND, values, 'guidance_scale', 3.0);
      options.solver = 'unipc';
    }
    const sampler = steps
      ? `few-step causal, steps [${steps.map((t) => Math.round(t * 100) / 100).join(', ')}], KV cache, no CFG`
      : `many-step causal, ${MANY_STEPS} UniPC steps, CFG ${options.guidance}`;
    ctx.log(`${KIND}: ${prompts.length} videos, ${sampler}, k = ${model.framesPerBlock}, weights ${useEma ? 'generator_ema' : 'generator'}`);
    ctx.progress(0, prompts.length);
    const r = await sample(options, { signal: ctx.signal, onProgress: (p) => ctx.progress(p.step, p.total, p.metrics) });
    if (r.cancelled || r.output === undefined) {
      ctx.signal.throwIfAborted();
      throw new KindError(`${KIND}: sampling stopped without a cancel request`);
    }

    // Decode and write.
    const { vae } = geometryFromConfig(KIND, values);
    const shape = [model.frames ?? 9, model.channels ?? 48, model.height ?? 8, model.width ?? 8] as const;
    const per = shape.reduce((a, b) => a * b, 1);
    const clips: LabelledClip[] = prompts.map((prompt, i) => ({ prompt, video: vae.decodeToVideo(r.output!.subarray(i * per, (i + 1) * per), shape) }));
    const records: SampleRecord[] = prompts.map((prompt, i) => ({
      prompt,
      forward_calls: r.calls?.[i] ?? 0,
      generation_seconds: r.seconds?.[i] ?? 0,
      first_block_seconds: r.firstBlockSeconds?.[i] ?? 0,
    }));
    const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const callsPerVideo = mean(records.map((x) => x.forward_calls));
    const secondsPerVideo = mean(records.map((x) => x.generation_seconds));
    const metadata: Record<string, string> = {
      sampler,
      mode: options.mode,
      frames_per_block: String(model.framesPerBlock),
      forward_calls_per_video: String(callsPerVideo),
      generation_seconds_per_video: secondsPerVideo.toFixed(4),
      first_block_seconds: mean(records.map((x) => x.first_block_seconds)).toFixed(4),
      frames_per_second: (r.framesPerSecond ?? 0).toFixed(2),
      weights: useEma ? 'generator_ema' : 'generator',
      seed: String(seed),
    };
    await writeVideoSet(out, clips, { metadata, signal: ctx.signal });
    const temp = join(out, `samples.json.tmp-${process.pid}`);
    mkdirSync(out, { recursive: true });
    writeFileSync(temp, `${JSON.stringify({ ...metadata, forward_calls_per_video: callsPerVideo, generation_seconds_per_video: secondsPerVideo, videos: records }, null, 2)}\n`);
    renameSync(temp, join(out, 'samples.json'));
    ctx.log(`${KIND}: ${callsPerVideo} forward calls and ${secondsPerVideo.toFixed(3)} s per video, ${metadata.frames_per_second} latent frames/s${cudaGraphsNote(r.cudaGraphs)}`);
  },
};
