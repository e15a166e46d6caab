// Text dropout for classifier-free guidance, as extra training rows.
//
// Upstream fine-tunes Wan2.1, which was pretrained with its text dropped a fraction of the time,
// so the unconditional branch that CFG subtracts (the AR teacher's sampler, the ODE pairs at
// g = 6, DMD's real score) is a trained prediction. Our base model and AR teacher are trained
// from scratch: without dropout the negative prompt's embedding is an input the network has
// never seen, and CFG extrapolates from a meaningless prediction. `text_dropout: p` (a cfpipe
// key, diffusion trainer only) appends round(N p / (1 - p)) rows that repeat clips spread evenly
// over the data set with the negative prompt's embedding as their text, so a fraction p of all
// rows is unconditional. Rows rather than a per-step coin: the engine's data order, checkpoints
// and resume stay exactly as they are, and the rows are part of the training problem's key.

import type { TrainData } from '../../native/index.js';

/** Rows added for dropout p over n conditional rows. */
export function dropoutRows(n: number, p: number): number {
  if (!(p >= 0 && p < 1)) throw new RangeError(`text dropout must be in [0, 1), got ${p}`);
  return Math.round((n * p) / (1 - p));
}

/** `data` with a fraction `p` of unconditional rows appended (the same object when p = 0). */
export function withTextDropout(data: TrainData, uncond: Float32Array, p: number): TrainData {
  const n = data.count;
  const extra = dropoutRows(n, p);
  if (extra === 0) return data;
  const samples = data.samples;
  if (samples === undefined) throw new RangeError('text dropout needs training samples (latents or trajectories)');
  const per = samples.length / n;
  const textLen = data.text.length / n;
  if (uncond.length !== textLen) throw new RangeError(`negative prompt embedding has ${uncond.length} values, a row's text has ${textLen}`);
  const outSamples = new Float32Array((n + extra) * per);
  const outText = new Float32Array((n + extra) * textLen);
  outSamples.set(samples);
  outText.set(data.text);
  for (let i = 0; i < extra; i++) {
    const source = Math.floor((i * n) / extra); // clips spread evenly over the data set
    outSamples.set(samples.subarray(source * per, (source + 1) * per), (n + i) * per);
    outText.set(uncond, (n + i) * textLen);
  }
  return { ...data, count: n + extra, samples: outSamples, text: outText, ...(data.textUncond ? { textUncond: data.textUncond } : {}) };
}
