// `synth`: the built-in video domain as datasets (design §6).
//
//   stage clean: synth { clips = 256  heldout_clips = 64  seed = 0 }
//
// Outputs:
//   latents  training clips, encoded by the domain VAE, as an upstream clean-latent LMDB
//            ("N 1 F C H W", float16, prompts) — what LatentLMDBDataset reads;
//   heldout  held-out clips (another random stream of the same domain), same layout, for eval;
//   prompts  the held-out clips' prompts, one per line, in order (upstream's TextDataset): the
//            prompts DMD trains on and inference samples, so eval compares like with like.
// The clip geometry follows the optional config's model_kwargs (see domain/params.ts). Clip i
// of a split depends only on (seed, split, i), so a bigger set extends a smaller one.
// `lmdb_format = 1` writes LMDB 0.9's format, for upstream's Python tools (default 2: lmdb-js).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { clip, type DomainConfig, type Split } from '../domain/clips.js';
import { LatentLmdbWriter } from '../domain/lmdb_layout.js';
import { writePrompts } from '../domain/prompts_file.js';
import { domainFromParams, geometryFromConfig, intParam, lmdbFormatParam } from '../domain/params.js';
import type { SpaceToDepthVae } from '../domain/vae.js';
import { KindError, type KindContext, type StageKind } from './types.js';

function outputPath(ctx: KindContext, name: string): string {
  const path = ctx.outputs[name];
  if (path === undefined) throw new KindError(`synth: the runner gave no path for output \`${name}\``);
  return path;
}

async function writeSplit(ctx: KindContext, path: string, domain: DomainConfig, vae: SpaceToDepthVae, split: Split, count: number, done: { n: number }, total: number, format: 1 | 2): Promise<string[]> {
  mkdirSync(dirname(path), { recursive: true });
  const [f, c, h, w] = vae.latentShape(domain.frames, domain.height, domain.width);
  const writer = LatentLmdbWriter.create(path, { rowShape: [1, f, c, h, w], format });
  const prompts: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      ctx.signal.throwIfAborted();
      const { prompt, video } = clip(domain, split, i);
      await writer.append(vae.encodeVideo(video), prompt);
      prompts.push(prompt);
      done.n++;
      ctx.progress(done.n, total);
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return prompts;
}

export const kind: StageKind = {
  name: 'synth',
  async run(ctx: KindContext): Promise<void> {
    const params = ctx.task.params;
    const clips = intParam('synth', params, 'clips', 1);
    const heldout = intParam('synth', params, 'heldout_clips', 1);
    const geometry = geometryFromConfig('synth', ctx.task.config?.values);
    const domain = domainFromParams('synth', params, geometry);
    const { vae } = geometry;
    ctx.log(
      `synth: ${clips} training + ${heldout} held-out clips of ${domain.frames}x${domain.height}x${domain.width} RGB → latents [${vae.latentShape(domain.frames, domain.height, domain.width).join(', ')}]; ` +
        `${domain.colors.length} colours x ${domain.shapes.length} shapes x ${domain.directions.length} directions`,
    );
    const format = lmdbFormatParam('synth', params);
    const done = { n: 0 };
    const total = clips + heldout;
    await writeSplit(ctx, outputPath(ctx, 'latents'), domain, vae, 'train', clips, done, total, format);
    const heldoutPrompts = await writeSplit(ctx, outputPath(ctx, 'heldout'), domain, vae, 'heldout', heldout, done, total, format);
    const promptsPath = outputPath(ctx, 'prompts');
    mkdirSync(dirname(promptsPath), { recursive: true });
    writePrompts(promptsPath, heldoutPrompts);
  },
};
