// `train`: one of the four upstream trainers on the native engine (core/trainer.h).
//
//   stage ar_diffusion: train { config = "configs/ar_diffusion_tf_framewise.yaml"  init = base.model
//                               data = clean.latents  steps = 1200  checkpoint_every = 100 }
//
// Inputs: data (clean-latent LMDB for diffusion and CD, ODE-pair LMDB for ode, a prompt file for
// DMD), init (generator_ckpt), teacher (CD; default: init), real_score / fake_score (DMD; the
// critic starts from real_score when fake_score is absent). Prompts are encoded with the domain's
// frozen text encoder, the negative prompt too. The config's upstream keys become native options
// (native_config.ts). Checkpoints go to the task's work dir every `checkpoint_every` steps and on
// Ctrl-C; a rerun resumes from the newest valid one and ends with the same weights, byte for byte.
// Output `model`: a checked safetensors file with generator.* and, once the EMA runs,
// generator_ema.* (upstream's checkpoint dict keys).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { cudaGraphsNote, train, type TrainData, type DeviceSpec, type TrainOptions } from '../../native/index.js';
import { LatentLmdbReader, LmdbLayoutError } from '../domain/lmdb_layout.js';
import { readPrompts } from '../domain/prompts_file.js';
import { boolParam, intParam } from '../domain/params.js';
import { withTextDropout } from './text_dropout.js';
import { checkClipShape, negativePrompt, numberKey, textEncoderFor, threadsFor, trainerOf, trainSettings, type ConfigValues } from './native_config.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const KIND = 'train';

/** The rows of a latent LMDB as one float32 array: clean clips, or whole trajectories. */
async function readLatents(path: string, whole: boolean, model: TrainOptions['config'], signal: AbortSignal): Promise<{ data: TrainData; prompts: string[] }> {
  const reader = new LatentLmdbReader(path);
  try {
    const [s, f, c, h, w] = reader.trajectoryShape;
    checkClipShape(KIND, path, [f, c, h, w], model);
    if (whole && s < 3) throw new KindError(`${KIND}: ${path} holds rows of ${s} snapshot(s); the ode trainer needs ODE trajectories [S ≥ 3, F, C, H, W] (an lmdb_build output)`);
    const per = (whole ? s : 1) * f * c * h * w;
    const samples = new Float32Array(reader.count * per);
    const prompts: string[] = [];
    for (let i = 0; i < reader.count; i++) {
      signal.throwIfAborted();
      samples.set(whole ? reader.trajectory(i) : reader.clean(i), i * per);
      prompts.push(reader.prompt(i));
    }
    return { data: { count: reader.count, slots: whole ? s : 1, samples, text: new Float32Array(0) }, prompts };
  } finally {
    await reader.close();
  }
}

export const kind: StageKind = {
  name: KIND,
  async run(ctx: KindContext): Promise<void> {
    const { task } = ctx;
    const values: ConfigValues = task.config?.values ?? {};
    if (task.config === undefined) throw new KindError(`${KIND}: stage \`${task.stage}\` needs a config`);
    const trainer = trainerOf(KIND, values, task.params.trainer);
    const steps = intParam(KIND, task.params, 'steps', 0, typeof values.max_steps === 'number' ? values.max_steps : undefined);
    const checkpointEvery = intParam(KIND, task.params, 'checkpoint_every', 1);
    const useEma = boolParam(KIND, task.params, 'use_ema', false);
    const settings = trainSettings(KIND, values, trainer, steps);
    const dataPath = ctx.inputs.data?.[0];
    if (dataPath === undefined) throw new KindError(`${KIND}: needs input \`data\``);
    const out = ctx.outputs.model;
    if (out === undefined) throw new KindError(`${KIND}: the runner gave no path for output \`model\``);

    // Data and prompts.
    let data: TrainData;
    let prompts: string[];
    try {
      if (trainer === 'score_distillation') {
        prompts = readPrompts(dataPath).filter((p) => p.length > 0);
        if (prompts.length === 0) throw new KindError(`${KIND}: ${dataPath} holds no prompts`);
        data = { count: prompts.length, text: new Float32Array(0) };
      } else {
        ({ data, prompts } = await readLatents(dataPath, trainer === 'ode', settings.config, ctx.signal));
      }
    } catch (error) {
      if (error instanceof LmdbLayoutError) throw new KindError(`${KIND}: ${error.message}`);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new KindError(`${KIND}: cannot read ${dataPath}`);
      throw error;
    }
    const encoder = textEncoderFor(KIND, values);
    data.text = encoder.encodeBatch(prompts);
    data.textUncond = encoder.encode(negativePrompt(KIND, values));
    const dropout = numberKey(KIND, values, 'text_dropout', 0);
    if (dropout !== 0 && trainer !== 'diffusion') throw new KindError(`${KIND}: \`text_dropout\` applies to the diffusion trainer only (this config's trainer is ${trainer})`);
    if (!(dropout >= 0 && dropout < 1)) throw new KindError(`${KIND}: config \`text_dropout\` must be in [0, 1), got ${dropout}`);
    const conditionalRows = data.count;
    data = withTextDropout(data, data.textUncond, dropout);

    const options: TrainOptions = {
      ...settings,
      data,
      workDir: ctx.workDir,
      resume: true,
      checkpointEvery,
      keepCheckpoints: 2,
      threads: threadsFor(task),
      device: ctx.device as DeviceSpec,
      outputPath: out,
      outputMetadata: { stage: task.stage, config: task.config.path, trainer },
    };
    const init = ctx.inputs.init?.[0];
    const teacher = ctx.inputs.teacher?.[0];
    const realScore = ctx.inputs.real_score?.[0];
    const fakeScore = ctx.inputs.fake_score?.[0];
    if (init) options.init = init;
    if (teacher) options.teacher = teacher;
    if (realScore) options.realScore = realScore;
    if (fakeScore) options.fakeScore = fakeScore;
    if ((trainer === 'ode' || trainer === 'score_distillation') && !init) throw new KindError(`${KIND}: the ${trainer} trainer needs input \`init\``);
    if (trainer === 'score_distillation' && !realScore) throw new KindError(`${KIND}: score_distillation needs input \`real_score\``);
    if (useEma && trainer !== 'consistency_distillation' && (settings.emaStartStep ?? 0) >= steps) {
      throw new KindError(`${KIND}: use_ema = true, but the EMA starts at step ${settings.emaStartStep} (ema_start_step) and the stage runs ${steps} steps`);
    }

    const m = settings.config;
    ctx.log(
      `${KIND}: ${trainer}${trainer === 'diffusion' ? (settings.teacherForcing ? ' (teacher forcing)' : settings.causal ? ' (block-causal)' : ' (bidirectional)') : ''}, ` +
        `k = ${m.framesPerBlock}, ${data.count} rows${data.count > conditionalRows ? ` (${data.count - conditionalRows} with the negative prompt: text_dropout ${dropout})` : ''}${trainer === 'ode' ? ` of ${data.slots} snapshots` : ''}, batch ${settings.batch}, ${steps} steps, ` +
        `lr ${settings.lr}${trainer === 'score_distillation' ? ` (critic ${settings.lrCritic}, 1:${settings.dfakeGenUpdateRatio})` : ''}, ${options.threads} thread(s)`,
    );
    mkdirSync(dirname(out), { recursive: true });
    const result = await train(options, {
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.checkpoint) ctx.checkpoint(p.step, p.checkpoint);
        ctx.progress(p.step, p.total, p.metrics);
      },
    });
    if (result.cancelled) {
      ctx.signal.throwIfAborted();
      throw new KindError(`${KIND}: stopped at step ${result.step} without a cancel request`);
    }
    if (useEma && !result.emaActive) throw new KindError(`${KIND}: use_ema = true but the EMA never started`);
    ctx.log(
      `${KIND}: ${result.step} steps (${result.resumedFrom !== undefined ? `resumed from ${result.resumedFrom}, ` : ''}${result.seconds.toFixed(1)} s here), ` +
        `final loss ${result.loss.toPrecision(4)}${trainer === 'score_distillation' ? `, generator loss ${result.generatorLoss.toPrecision(4)}` : ''}; ` +
        `${result.params} parameters${result.emaActive ? ', with generator_ema' : ''}${cudaGraphsNote(result.cudaGraphs)}`,
    );
  },
};
