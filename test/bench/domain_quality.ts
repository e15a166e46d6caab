// Quality experiments on the built-in domain without the runner: trains the bidirectional base and
// the teacher-forcing AR model with the native engine in-process and evaluates many-step samples
// with the domain's eval, so one experiment is a minute, not a pipeline run. Prints figures only.
//
//   npx tsc -p . && node dist/test/bench/domain_quality.js [--base-steps N] [--ar-steps N] [--lr X]
//        [--ar-lr X] [--clips N] [--samples N] [--directions a,b] [--work DIR] [--normalise]
//        [--device cuda] [--colors all|a,b] [--patch N] [--guidances 3,6] [--ema W] [--ema-start N]
//   --ema W: keep an EMA (decay W) from step --ema-start (default 0) in the base and the teacher, and
//   evaluate both the raw weights and the EMA (labels end in "ema"); the teacher starts from the base's EMA.
//   --base-steps and --ar-steps take a comma list of milestones: the base trains on (resuming) to
//   each milestone and is evaluated there; a fresh AR teacher is trained from every base milestone
//   through the AR milestones, evaluated at each. One `result {...}` JSON line per evaluation.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sample, train, type ModelConfigInput, type SampleOptions, type TrainOptions } from '../../native/index.js';
import { clip, domainConfig } from '../../runner/domain/clips.js';
import { evaluateVideos, type LabelledVideo } from '../../runner/domain/eval.js';
import { FrozenTextEncoder } from '../../runner/domain/text.js';
import { SpaceToDepthVae } from '../../runner/domain/vae.js';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? fallback) : fallback;
};
const flag = (name: string): boolean => argv.includes(`--${name}`);
const milestones = (name: string, fallback: string): number[] => opt(name, fallback).split(',').map(Number).filter((n) => n > 0);
const baseMilestones = milestones('base-steps', '600');
const arMilestones = milestones('ar-steps', '0');
const device = opt('device', 'cpu') as 'cpu' | 'cuda';
const patch = Number(opt('patch', '2'));
const colors = opt('colors', 'red,green,blue,yellow');
const lr = Number(opt('lr', '2e-3'));
const arLr = Number(opt('ar-lr', '5e-4'));
const nClips = Number(opt('clips', '256'));
const nSamples = Number(opt('samples', '32'));
const numSteps = Number(opt('num-steps', '50'));
const guidance = Number(opt('guidance', '3'));
const batch = Number(opt('batch', '8'));
const work = opt('work', '/tmp/dq');
const directions = opt('directions', '');
const reuseBase = flag('reuse-base');
const emaWeight = Number(opt('ema', '0'));
const ema = emaWeight > 0 ? { emaWeight, emaStartStep: Number(opt('ema-start', '0')) } : {};
// The weights each evaluation reads: the raw generator, and its EMA when one is kept.
const prefixes = emaWeight > 0 ? ['generator.', 'generator_ema.'] : ['generator.'];
const prefixLabel = (prefix: string): string => (prefix === 'generator_ema.' ? ' ema' : '');
mkdirSync(work, { recursive: true });

const domain = domainConfig({ frames: 9, height: 16, width: 16, ...(colors === 'all' ? {} : { colors: colors.split(',') }), ...(directions ? { directions: directions.split(',') } : {}),
  ...(opt('size', '') ? { sizeMin: Number(opt('size', '').split(',')[0]), sizeMax: Number(opt('size', '').split(',')[1]) } : {}),
  ...(opt('speed', '') ? { speedMin: Number(opt('speed', '').split(',')[0]), speedMax: Number(opt('speed', '').split(',')[1]) } : {}) });
console.log(`domain: ${domain.directions.length} directions, size ${domain.sizeMin}..${domain.sizeMax}, speed ${domain.speedMin}..${domain.speedMax}`);
const vae = new SpaceToDepthVae(2);
const shape = [9, 12, 8, 8] as const;
const per = shape.reduce((a, b) => a * b, 1);
const enc = new FrozenTextEncoder({ textLen: 8, textDim: 32 });
const negative = enc.encode('static, frozen, blurry, distorted shape, wrong colour, flicker, two objects');
const train_ = Array.from({ length: nClips }, (_, i) => clip(domain, 'train', i));
const held = flag('train-prompts') ? Array.from({ length: 64 }, (_, i) => clip(domain, 'train', i % nClips)) : Array.from({ length: 64 }, (_, i) => clip(domain, 'heldout', i));
const samples = new Float32Array(nClips * per);
train_.forEach((c, i) => samples.set(vae.encodeVideo(c.video), i * per));
let sq = 0;
for (const v of samples) sq += v * v;
console.log(`latent rms ${Math.sqrt(sq / samples.length).toFixed(3)}`);
// --normalise: per-channel mean/std over the training latents (Wan's VAE normalises the same way);
// the model trains and samples in normalised space, and samples are mapped back before decoding.
const chanMean = new Float64Array(12).fill(0);
const chanStd = new Float64Array(12).fill(1);
const hw = 64;
if (flag('normalise')) {
  const s1 = new Float64Array(12);
  const s2 = new Float64Array(12);
  const perChan = nClips * 9 * hw;
  for (let i = 0; i < samples.length; i++) {
    const c = Math.floor(i / hw) % 12;
    s1[c]! += samples[i]!;
    s2[c]! += samples[i]! ** 2;
  }
  for (let c = 0; c < 12; c++) {
    chanMean[c] = s1[c]! / perChan;
    chanStd[c] = Math.max(1e-3, Math.sqrt(s2[c]! / perChan - chanMean[c]! ** 2)) / Number(opt('norm-scale', '1'));
  }
  for (let i = 0; i < samples.length; i++) {
    const c = Math.floor(i / hw) % 12;
    samples[i] = (samples[i]! - chanMean[c]!) / chanStd[c]!;
  }
  console.log(`normalised: mean ${Array.from(chanMean, (v) => v.toFixed(2)).join(' ')} std ${Array.from(chanStd, (v) => v.toFixed(3)).join(' ')}`);
}
const normalise = (x: Float32Array): Float32Array => x.map((v, i) => (v - chanMean[Math.floor(i / hw) % 12]!) / chanStd[Math.floor(i / hw) % 12]!);
const denormalise = (z: Float32Array): Float32Array => {
  const out = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const c = Math.floor(i / hw) % 12;
    out[i] = z[i]! * chanStd[c]! + chanMean[c]!;
  }
  return out;
};
{
  const ref = evaluateVideos(held.map((c) => ({ prompt: c.prompt, video: c.video })), held).generated.adherence;
  console.log(`reference clips: colour ${ref.color.toFixed(3)} shape ${ref.shape.toFixed(3)} direction ${ref.direction.toFixed(3)}`);
}
// --dropout p: text dropout for CFG, as extra rows whose text is the negative prompt (a fraction p of all rows).
const dropout = Number(opt('dropout', '0'));
const extra = Math.round((nClips * dropout) / (1 - dropout));
const text = new Float32Array((nClips + extra) * 256);
text.set(enc.encodeBatch(train_.map((c) => c.prompt)));
for (let i = 0; i < extra; i++) text.set(negative, (nClips + i) * 256);
const allSamples = new Float32Array((nClips + extra) * per);
allSamples.set(samples);
for (let i = 0; i < extra; i++) allSamples.set(samples.subarray(((i * 7) % nClips) * per, (((i * 7) % nClips) + 1) * per), (nClips + i) * per);
const rows = nClips + extra;
const model = (k: number): ModelConfigInput => ({ preset: 'tiny', framesPerBlock: k, channels: 12, heads: Number(opt('heads', '4')), ropeTheta: Number(opt('rope-theta', '10000')), dim: Number(opt('dim', '64')), layers: Number(opt('layers', '4')), ffnDim: Number(opt('ffn', '256')), freqDim: 32, textDim: 32, textLen: 8, frames: 9, height: 8, width: 8, patchT: 1, patchH: patch, patchW: patch });
const common = (k: number): Omit<TrainOptions, 'trainer' | 'steps' | 'data'> => ({ ...ema, config: model(k), batch, seed: 0, beta2: 0.999, weightDecay: 0.01, timestepShift: Number(opt('shift', '1')), dmdTimestepShift: Number(opt('shift', '1')), threads: 2, device });

async function evalModel(label: string, weights: string, k: number, options: Partial<SampleOptions> & { prefix?: string } = {}): Promise<void> {
  const { prefix = 'generator.', ...extra } = options;
  const prompts = held.slice(0, nSamples).map((c) => c.prompt);
  const t0 = Date.now();
  const r = await sample({ mode: 'many_step', config: model(k), weights: { path: weights, prefix }, count: prompts.length, batch: 8, seed: 0, threads: 2, device, text: enc.encodeBatch(prompts), textUncond: negative, timestepShift: Number(opt('shift', '1')), numSteps, shift: Number(opt('shift', '1')), guidance, solver: opt('solver', 'unipc') as 'unipc' | 'euler', ...extra });
  const videos: LabelledVideo[] = prompts.map((prompt, i) => ({ prompt, video: vae.decodeToVideo(denormalise(r.output!.subarray(i * per, (i + 1) * per)), shape) }));
  const m = evaluateVideos(videos, held);
  const a = m.generated.adherence;
  if (flag('verbose')) {
    const { analyzeVideo } = await import('../../runner/domain/eval.js');
    videos.slice(0, 12).forEach((v) => {
      const an = analyzeVideo(v.video);
      console.log(`  ${v.prompt.padEnd(32)} → ${an.color} ${an.shape} ${an.direction} v=(${an.vx.toFixed(2)}, ${an.vy.toFixed(2)}) speed ${an.speed.toFixed(2)} presence ${an.presence.toFixed(2)} cx ${an.frames.map((d) => (d.found ? d.cx.toFixed(1) : '-')).join(' ')}`);
    });
  }
  console.log(`result ${JSON.stringify({ tag: opt('tag', ''), label, colour: a.color, shape: a.shape, direction: a.direction, smooth: m.generated.temporal.smooth, rmse: m.generated.temporal.motionRmse, fd: m.frechetDistance })}`);
  console.log(`${label}: colour ${a.color.toFixed(3)} shape ${a.shape.toFixed(3)} direction ${a.direction.toFixed(3)} presence ${m.generated.temporal.presence.toFixed(2)} smooth ${m.generated.temporal.smooth.toFixed(2)} rmse ${m.generated.temporal.motionRmse.toFixed(2)} FD ${m.frechetDistance.toFixed(2)} calls ${r.calls?.[0]} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

const basePath = join(work, 'base.safetensors');
const baseData = { count: rows, samples: allSamples, text, textUncond: negative };
for (const baseSteps of baseMilestones) {
  if (!reuseBase) {
    const r = await train({ ...common(Number(opt('base-k', '9'))), trainer: 'diffusion', causal: false, teacherForcing: false, steps: baseSteps, lr, beta1: 0.9, ...(opt('init-base', '') ? { init: opt('init-base', '') } : {}), data: baseData, outputPath: basePath, workDir: join(work, 'base-work'), resume: true, checkpointEvery: baseSteps });
    console.log(`base: ${baseSteps} steps, loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
  }
  if (!flag('skip-base-eval')) {
    for (const prefix of prefixes) await evalModel(`base ${baseSteps} (full mask)${prefixLabel(prefix)}`, basePath, 9, { prefix });
    if (flag('both-guidance')) await evalModel('base (full mask), guidance 1', basePath, 9, { guidance: 1 });
  }
  const arWork = join(work, `ar-work-${baseSteps}`);
  rmSync(arWork, { recursive: true, force: true });
  for (const arSteps of arMilestones) {
    const arPath = join(work, 'ar.safetensors');
    const r = await train({ ...common(1), trainer: 'diffusion', causal: true, teacherForcing: true, steps: arSteps, lr: arLr, beta1: Number(opt('ar-beta1', '0')), init: { path: basePath, prefix: prefixes.at(-1)! }, data: baseData, outputPath: arPath, workDir: arWork, resume: true, checkpointEvery: arSteps });
    console.log(`ar: ${arSteps} steps, loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
    for (const g of opt('guidances', String(guidance)).split(',').map(Number)) {
      for (const prefix of prefixes) await evalModel(`AR teacher ${baseSteps}/${arSteps} g${g} (cached, many-step)${prefixLabel(prefix)}`, arPath, 1, { guidance: g, prefix });
    }
  }
  // --bidi-from-ar N: a bidirectional model fine-tuned (full mask, one noise level per clip) from
  // the last AR teacher — a candidate "stronger bidirectional model" for DMD's real score.
  const bidiSteps = Number(opt('bidi-from-ar', '0'));
  if (bidiSteps > 0 && arMilestones.length > 0) {
    const bidiPath = join(work, 'bidi.safetensors');
    const r = await train({ ...common(9), trainer: 'diffusion', causal: false, teacherForcing: false, steps: bidiSteps, lr: Number(opt('bidi-lr', String(arLr))), beta1: 0.9, init: join(work, 'ar.safetensors'), data: baseData, outputPath: bidiPath });
    console.log(`bidi from AR: ${bidiSteps} steps, loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(1)} s`);
    for (const g of opt('guidances', String(guidance)).split(',').map(Number)) await evalModel(`bidirectional from AR ${baseSteps}/${arMilestones.at(-1)}+${bidiSteps} g${g} (full mask)`, bidiPath, 9, { guidance: g });
  }
}

// The AR model with the GT clean history (teacher forcing at inference): both ODE modes, endpoint slot.
if (flag('ode-check')) {
  const arPath = join(work, 'ar.safetensors');
  const prompts = held.slice(0, nSamples).map((c) => c.prompt);
  const clean = new Float32Array(prompts.length * per);
  held.slice(0, nSamples).forEach((c, i) => clean.set(normalise(vae.encodeVideo(c.video)), i * per));
  for (const odeMode of ['full', 'blockwise_kv'] as const) {
    const r = await sample({ mode: 'ode', config: model(1), weights: { path: arPath, prefix: 'generator.' }, count: prompts.length, batch: 8, seed: 0, threads: 2, text: enc.encodeBatch(prompts), textUncond: negative, timestepShift: Number(opt('shift', '1')), numSteps: 48, shift: Number(opt('shift', '1')), guidance, clean, snapshots: [0], odeMode });
    const S = 3;
    const videos: LabelledVideo[] = prompts.map((prompt, i) => ({ prompt, video: vae.decodeToVideo(denormalise(r.output!.subarray((i * S + 1) * per, (i * S + 2) * per)), shape) }));
    const m = evaluateVideos(videos, held);
    const a = m.generated.adherence;
    if (flag('verbose')) {
      const { analyzeVideo } = await import('../../runner/domain/eval.js');
      videos.slice(0, 6).forEach((v, i) => {
        const an = analyzeVideo(v.video);
        const gt = analyzeVideo(held[i]!.video);
        console.log(`  ${v.prompt.padEnd(30)} gen cx ${an.frames.map((d) => (d.found ? d.cx.toFixed(1) : '-')).join(' ')} | gt cx ${gt.frames.map((d) => d.cx.toFixed(1)).join(' ')}`);
        console.log(`  ${''.padEnd(30)} gen cy ${an.frames.map((d) => (d.found ? d.cy.toFixed(1) : '-')).join(' ')} | gt cy ${gt.frames.map((d) => d.cy.toFixed(1)).join(' ')}`);
      });
    }
    console.log(`AR with GT history (ode ${odeMode}): colour ${a.color.toFixed(3)} shape ${a.shape.toFixed(3)} direction ${a.direction.toFixed(3)} FD ${m.frechetDistance.toFixed(2)}`);
  }
}
