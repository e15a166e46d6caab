// `eval`: generated videos against held-out real clips, on the domain's metrics (design §6).
//
//   stage eval_dmd: eval { videos = infer_dmd.videos  reference = clean.heldout  label = "DMD, 4-step" }
//
// Reads the video set (domain/video_set.ts) and the held-out LMDB, decodes the held-out latents
// with the domain VAE (its factor follows from the latent channels), scores both sets and
// writes metrics.json (domain/metrics_file.ts).

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { evaluateVideos, type LabelledVideo } from '../domain/eval.js';
import { LatentLmdbReader, LmdbLayoutError } from '../domain/lmdb_layout.js';
import { metricsJson } from '../domain/metrics_file.js';
import { stringParam } from '../domain/params.js';
import { SafetensorsError } from '../domain/safetensors.js';
import { SpaceToDepthVae } from '../domain/vae.js';
import { readVideoSet, readVideoSetMetadata } from '../domain/video_set.js';
import { KindError, type KindContext, type StageKind } from './types.js';

/** The clean clips of a latent LMDB, decoded to 8-bit RGB. */
export async function decodeLatentSet(path: string, signal?: AbortSignal): Promise<LabelledVideo[]> {
  const reader = new LatentLmdbReader(path);
  try {
    const [, f, c, h, w] = reader.trajectoryShape;
    const factor = Math.round(Math.sqrt(c / 3));
    if (factor * factor * 3 !== c) throw new KindError(`eval: ${path} has ${c} latent channels, not 3·f² (not a dataset of the built-in domain)`);
    const vae = new SpaceToDepthVae(factor);
    const out: LabelledVideo[] = [];
    for (let i = 0; i < reader.count; i++) {
      signal?.throwIfAborted();
      out.push({ prompt: reader.prompt(i), video: vae.decodeToVideo(reader.clean(i), [f, c, h, w]) });
    }
    return out;
  } finally {
    await reader.close();
  }
}

export const kind: StageKind = {
  name: 'eval',
  async run(ctx: KindContext): Promise<void> {
    const videosDir = ctx.inputs.videos?.[0];
    const referencePath = ctx.inputs.reference?.[0];
    const out = ctx.outputs.metrics;
    if (videosDir === undefined || referencePath === undefined) throw new KindError('eval: needs inputs `videos` and `reference`');
    if (out === undefined) throw new KindError('eval: the runner gave no path for output `metrics`');
    const label = stringParam('eval', ctx.task.params, 'label') ?? ctx.task.stage;
    let generated: LabelledVideo[];
    let reference: LabelledVideo[];
    let sampling: Record<string, string>;
    try {
      generated = readVideoSet(videosDir);
      sampling = readVideoSetMetadata(videosDir);
      reference = await decodeLatentSet(referencePath, ctx.signal);
    } catch (error) {
      if (error instanceof SafetensorsError || error instanceof LmdbLayoutError) throw new KindError(`eval: ${error.message}`);
      throw error;
    }
    if (generated.length === 0) throw new KindError(`eval: ${videosDir} holds no videos`);
    const g = generated[0]!.video;
    const r = reference[0]?.video;
    if (r !== undefined && (g.frames !== r.frames || g.height !== r.height || g.width !== r.width)) {
      ctx.log(`eval: note: generated videos are ${g.frames}x${g.height}x${g.width}, held-out clips ${r.frames}x${r.height}x${r.width}`);
    }
    ctx.progress(0, 1);
    const metrics = metricsJson(evaluateVideos(generated, reference), label, ctx.task.stage, sampling);
    ctx.progress(1, 1);
    const a = metrics.adherence;
    ctx.log(
      `eval ${label}: adherence colour ${a.color.toFixed(3)} shape ${a.shape.toFixed(3)} direction ${a.direction.toFixed(3)} (all ${a.all.toFixed(3)}); ` +
        `identity ${metrics.temporal_consistency.identity.toFixed(3)}, smooth ${metrics.temporal_consistency.smooth.toFixed(3)}; ` +
        `dynamic degree ${metrics.dynamic_degree.ratio.toFixed(3)}x; Fréchet distance ${metrics.frechet_distance.toFixed(4)}`,
    );
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.tmp-${process.pid}`, `${JSON.stringify(metrics, null, 2)}\n`);
    renameSync(`${out}.tmp-${process.pid}`, out);
  },
};
