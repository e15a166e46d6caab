// Does a trained model use the other frames? Denoising loss of the flow prediction on held-out
// clips as they are, with their frames shuffled in time, and with every frame replaced by frame 0
// (static), at several noise levels. A model that ties frames together predicts real clips better
// than shuffled ones at high noise. Prints figures only.
//
//   node dist/test/bench/temporal_probe.js WEIGHTS.safetensors [--heads 4] [--dim 64] [--rope-theta 10000]
import { modelForward, modelParamTable, type ModelConfigInput } from '../../native/index.js';
import { clip, domainConfig } from '../../runner/domain/clips.js';
import { FrozenTextEncoder } from '../../runner/domain/text.js';
import { SpaceToDepthVae } from '../../runner/domain/vae.js';
import { SafetensorsReader } from '../../runner/domain/safetensors.js';
import { CounterRng } from '../../runner/domain/rng.js';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? fallback) : fallback;
};
const weights = argv[0] ?? '';
const config: ModelConfigInput = { preset: 'tiny', framesPerBlock: 9, channels: 12, heads: Number(opt('heads', '4')), ropeTheta: Number(opt('rope-theta', '10000')), dim: Number(opt('dim', '64')), layers: Number(opt('layers', '4')), ffnDim: Number(opt('ffn', '256')), freqDim: 32, textDim: 32, textLen: 8, frames: 9, height: 8, width: 8, patchT: 1, patchH: 2, patchW: 2 };
const table = modelParamTable(config);
const params = new Float32Array(table.count);
const reader = new SafetensorsReader(weights);
for (const p of table.params) {
  const name = reader.tensors.has(`generator.${p.name}`) ? `generator.${p.name}` : p.name;
  const bytes = reader.readBytes(name);
  params.set(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), p.offset);
}
const domain = domainConfig({ frames: 9, height: 16, width: 16, colors: ['red', 'green', 'blue', 'yellow'] });
const vae = new SpaceToDepthVae(2);
const enc = new FrozenTextEncoder({ textLen: 8, textDim: 32 });
const n = 32;
const per = 9 * 12 * 64;
const frame = 12 * 64;
const clips = Array.from({ length: n }, (_, i) => clip(domain, 'heldout', i));
const real = new Float32Array(n * per);
clips.forEach((c, i) => real.set(vae.encodeVideo(c.video), i * per));
const rng = new CounterRng([42]);
const shuffled = new Float32Array(n * per);
const stat = new Float32Array(n * per);
for (let i = 0; i < n; i++) {
  const order = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  for (let a = 8; a > 0; a--) {
    const b = rng.int(a + 1);
    [order[a], order[b]] = [order[b]!, order[a]!];
  }
  for (let f = 0; f < 9; f++) {
    shuffled.set(real.subarray(i * per + order[f]! * frame, i * per + (order[f]! + 1) * frame), i * per + f * frame);
    stat.set(real.subarray(i * per, i * per + frame), i * per + f * frame);
  }
}
const text = enc.encodeBatch(clips.map((c) => c.prompt));
const noise = new Float32Array(n * per).map(() => rng.normal());
for (const sigma of [0.3, 0.5, 0.7, 0.85, 0.95]) {
  const row: string[] = [];
  for (const [label, x0] of [['real', real], ['shuffled', shuffled], ['static', stat]] as const) {
    const xt = x0.map((v, i) => (1 - sigma) * v + sigma * noise[i]!);
    const out = await modelForward({ config, params, batch: n, x: xt, t: new Float32Array(n * 9).fill(sigma * 1000), text, mask: 'full', threads: 2 });
    let se = 0;
    for (let i = 0; i < xt.length; i++) se += (out![i]! - (noise[i]! - x0[i]!)) ** 2;
    row.push(`${label} ${(se / xt.length).toFixed(4)}`);
  }
  console.log(`sigma ${sigma}: ${row.join('  ')}`);
}
