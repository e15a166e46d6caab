// `report`: eval metrics side by side, as one Markdown page (with the numbers again as a JSON
// block at the end for tools), plus a few of the videos each `videos` input holds.
//
//   stage report: report { metrics = [eval_teacher.metrics, eval_dmd.metrics]  videos = [infer_dmd.videos] }

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseMetrics, type MetricsJson } from '../domain/metrics_file.js';
import { stringParam } from '../domain/params.js';
import { readVideoIndex } from '../domain/video_set.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const VIDEOS_SHOWN = 8;
const f3 = (x: number) => x.toFixed(3);

/** The Markdown page for these metrics (and video sets, each given as [label, directory]). */
export function renderReport(title: string, metrics: readonly MetricsJson[], videoSets: readonly (readonly [string, string])[]): string {
  const lines: string[] = [`# ${title}`, ''];
  const ref = metrics[0]?.reference;
  lines.push(
    '| model | videos | colour | shape | direction | all three | identity | smooth motion | dynamic degree (× real) | Fréchet distance | network calls / video | generation s / video |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const m of metrics) {
    const a = m.adherence;
    const t = m.temporal_consistency;
    const calls = m.sampling.forward_calls_per_video ?? '–';
    const seconds = m.sampling.generation_seconds_per_video;
    const perVideo = seconds === undefined || !Number.isFinite(Number(seconds)) ? '–' : Number(seconds).toFixed(3);
    lines.push(`| ${m.label} | ${m.videos} | ${f3(a.color)} | ${f3(a.shape)} | ${f3(a.direction)} | ${f3(a.all)} | ${f3(t.identity)} | ${f3(t.smooth)} | ${f3(m.dynamic_degree.ratio)} | ${m.frechet_distance.toFixed(4)} | ${calls} | ${perVideo} |`);
  }
  if (ref !== undefined) {
    const a = ref.adherence;
    const t = ref.temporal_consistency;
    lines.push(`| *held-out real clips* | ${ref.videos} | ${f3(a.color)} | ${f3(a.shape)} | ${f3(a.direction)} | ${f3(a.all)} | ${f3(t.identity)} | ${f3(t.smooth)} | 1.000 | 0 | – | – |`);
  }
  lines.push(
    '',
    'Adherence: fraction of videos whose detected object has the prompt\'s colour, shape and initial direction. ' +
      'Identity: fraction of frames showing the majority colour and shape. Smooth motion: fraction of videos moving like a ' +
      'ball between walls (RMSE ≤ 1 px). Dynamic degree: mean object speed over the real clips\'. Fréchet distance: between ' +
      'Gaussian fits of per-video features of generated and held-out real clips (0 = same statistics).',
  );
  for (const [label, dir] of videoSets) {
    lines.push('', `## Videos: ${label}`, '');
    let entries;
    try {
      entries = readVideoIndex(dir);
    } catch {
      lines.push(`(no index.json in ${dir})`);
      continue;
    }
    for (const e of entries.slice(0, VIDEOS_SHOWN)) {
      const link = encodeURI(join(dir, e.gif));
      lines.push(`- ${e.prompt}: [GIF](${link})${e.mp4 ? ` · [mp4](${encodeURI(join(dir, e.mp4))})` : ''}`);
    }
    if (entries.length > VIDEOS_SHOWN) lines.push(`- … and ${entries.length - VIDEOS_SHOWN} more in ${dir}`);
  }
  lines.push('', '```json', JSON.stringify(metrics, null, 2), '```', '');
  return lines.join('\n');
}

export const kind: StageKind = {
  name: 'report',
  async run(ctx: KindContext): Promise<void> {
    const out = ctx.outputs.summary;
    if (out === undefined) throw new KindError('report: the runner gave no path for output `summary`');
    const paths = ctx.inputs.metrics ?? [];
    if (paths.length === 0) throw new KindError('report: `metrics` names no metrics');
    const metrics = paths.map((p) => {
      try {
        return parseMetrics(readFileSync(p, 'utf8'), p);
      } catch (error) {
        throw new KindError(`report: ${(error as Error).message}`);
      }
    });
    const videoDirs = ctx.inputs.videos ?? [];
    const videoSources = ctx.task.inputs.find((i) => i.name === 'videos')?.sources ?? [];
    const videoSets = videoDirs.map((dir, i) => {
      const source = videoSources[i];
      return [source?.kind === 'task' ? source.task : `videos ${i + 1}`, dir] as const;
    });
    const title = stringParam('report', ctx.task.params, 'title') ?? 'cfpipe report';
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.tmp-${process.pid}`, renderReport(title, metrics, videoSets));
    renameSync(`${out}.tmp-${process.pid}`, out);
    ctx.log(`report: ${metrics.length} result(s) → ${out}`);
  },
};
