// The domain's stage kinds (synth, lmdb_build, eval, report), each run by the real worker
// process as the runner runs them, on real files and real LMDBs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTask, runWorker } from '../fetch/worker_harness.js';
import { repoRoot } from '../util/paths.js';
import { clip, COLORS, domainConfig } from '../../runner/domain/clips.js';
import { LatentLmdbReader, lmdbDataFormat } from '../../runner/domain/lmdb_layout.js';
import { readPrompts } from '../../runner/domain/prompts_file.js';
import { SpaceToDepthVae } from '../../runner/domain/vae.js';
import { TrajectoryShardWriter } from '../../runner/domain/trajectories.js';
import { writeVideoSet } from '../../runner/domain/video_set.js';
import type { Task } from '../../runner/graph.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-domain-kinds-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (task: Task, inputs: Record<string, string[]>, outputs: Record<string, string>) =>
  runWorker({ task, inputs, outputs, workDir: join(tmp, `work-${task.kind}-${Object.values(outputs)[0]?.split('/').pop()}`), root: repoRoot, device: 'cpu' });
const failure = (r: Awaited<ReturnType<typeof runWorker>>) => {
  const m = r.messages.find((x) => x.t === 'failed');
  return m?.t === 'failed' ? m.message : undefined;
};

const synthOutputs = { latents: join(tmp, 'synth', 'latents'), heldout: join(tmp, 'synth', 'heldout'), prompts: join(tmp, 'synth', 'prompts.txt') };
const synthDone = (async () => {
  const task = makeTask('synth', { clips: 12, heldout_clips: 6, seed: 3 }, [
    { name: 'latents', type: 'dataset' },
    { name: 'heldout', type: 'dataset' },
    { name: 'prompts', type: 'file' },
  ]);
  return run(task, {}, synthOutputs);
})();

test('synth writes training and held-out latent LMDBs in the upstream clean layout, and the held-out prompts', async () => {
  const r = await synthDone;
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const train = new LatentLmdbReader(synthOutputs.latents);
  const held = new LatentLmdbReader(synthOutputs.heldout);
  assert.equal(train.count, 12);
  assert.equal(held.count, 6);
  assert.deepEqual(train.rowShape, [1, 9, 48, 8, 8]);
  // Row 5 is clip 5 of the domain (seed 3), through the VAE and float16.
  const cfg = domainConfig({ seed: 3, colors: ['red', 'green', 'blue', 'yellow'] });
  const expected = clip(cfg, 'train', 5);
  assert.equal(train.prompt(5), expected.prompt);
  const decoded = new SpaceToDepthVae(4).decodeToVideo(train.clean(5), [9, 48, 8, 8]);
  assert.ok(decoded.rgb.every((v, i) => Math.abs(v - expected.video.rgb[i]!) <= 1));
  assert.deepEqual(readPrompts(synthOutputs.prompts), [0, 1, 2, 3, 4, 5].map((i) => held.prompt(i)));
  assert.notEqual(held.prompt(0) + held.prompt(1), train.prompt(0) + train.prompt(1));
  await train.close();
  await held.close();
  assert.ok(r.messages.some((m) => m.t === 'progress' && m.step === 18 && m.total === 18));
});

test('synth follows the config\'s model_kwargs (factor-2 VAE: 12 channels, 16x16 latents) and refuses bad ones', async () => {
  const task = { ...makeTask('synth', { clips: 2, heldout_clips: 1 }, []), config: { path: 'x.yaml', values: { model_kwargs: { frames: 6, height: 16, width: 16, channels: 12 } } } };
  const out = { latents: join(tmp, 'f2', 'latents'), heldout: join(tmp, 'f2', 'heldout'), prompts: join(tmp, 'f2', 'prompts.txt') };
  const r = await run(task, {}, out);
  assert.equal(r.code, 0, r.stderr);
  const reader = new LatentLmdbReader(out.latents);
  assert.deepEqual(reader.rowShape, [1, 6, 12, 16, 16]);
  await reader.close();

  const bad = { ...task, config: { path: 'x.yaml', values: { model_kwargs: { channels: 16 } } } };
  const rb = await run(bad, {}, { latents: join(tmp, 'f3', 'l'), heldout: join(tmp, 'f3', 'h'), prompts: join(tmp, 'f3', 'p') });
  assert.match(failure(rb) ?? '', /synth: config `model_kwargs.channels` = 16 is not 3·f²/);
  assert.ok(!rb.stderr.includes('    at '));
});

test('lmdb_build turns trajectory shards into one ODE LMDB, dropping repeated prompts', async () => {
  const shape = [6, 2, 3, 2, 2] as const;
  const parts = [['a', 'b'], ['b', 'c']].map((prompts, s) => {
    const path = join(tmp, `shard${s}.safetensors`);
    const w = new TrajectoryShardWriter(path, { rowShape: shape, prompts, rows: prompts.map((_, i) => s * 2 + i) });
    for (let i = 0; i < prompts.length; i++) w.append(new Float32Array(144).fill(s + i / 2));
    w.commit();
    return path;
  });
  const out = join(tmp, 'ode_db');
  const r = await run(makeTask('lmdb_build', { lmdb_format: 1 }, [{ name: 'dataset', type: 'dataset' }], [{ name: 'parts', type: 'trajectories' }]), { parts }, { dataset: out });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 rows of \[6, 2, 3, 2, 2\] from 2 shard\(s\); 1 row\(s\) dropped/);
  assert.equal(lmdbDataFormat(out), 1, 'lmdb_format = 1 writes what upstream\'s Python tools read');
  const reader = new LatentLmdbReader(out);
  assert.deepEqual([0, 1, 2].map((i) => reader.prompt(i)), ['a', 'b', 'c']);
  assert.equal(reader.trajectory(2)[0], 1.5);
  await reader.close();
});

test('eval: real held-out clips score 1.0 against the held-out LMDB; recoloured ones fail colour only; report tabulates both', async () => {
  assert.equal((await synthDone).code, 0);
  const held = new LatentLmdbReader(synthOutputs.heldout);
  const vae = new SpaceToDepthVae(4);
  const clips = [0, 1, 2, 3, 4, 5].map((i) => ({ prompt: held.prompt(i), video: vae.decodeToVideo(held.clean(i), [9, 48, 8, 8]) }));
  await held.close();
  const realDir = join(tmp, 'videos-real');
  await writeVideoSet(realDir, clips, { mp4: false, metadata: { forward_calls_per_video: '36' } });
  const wrongDir = join(tmp, 'videos-wrong');
  const recolored = clips.map((c) => {
    const target = c.prompt.includes(' red ') ? COLORS.green! : COLORS.red!;
    const rgb = c.video.rgb.slice();
    for (let p = 0; p < rgb.length; p += 3) if (rgb[p]! > 100 || rgb[p + 1]! > 100 || rgb[p + 2]! > 100) rgb.set(target, p);
    return { prompt: c.prompt, video: { ...c.video, rgb } };
  });
  await writeVideoSet(wrongDir, recolored, { mp4: false });

  const evalTask = (label: string) => makeTask('eval', { label }, [{ name: 'metrics', type: 'metrics' }], [{ name: 'videos', type: 'videos' }, { name: 'reference', type: 'dataset' }]);
  const realMetrics = join(tmp, 'real.json');
  const wrongMetrics = join(tmp, 'wrong.json');
  const [r1, r2] = await Promise.all([
    run(evalTask('real clips'), { videos: [realDir], reference: [synthOutputs.heldout] }, { metrics: realMetrics }),
    run(evalTask('wrong colour'), { videos: [wrongDir], reference: [synthOutputs.heldout] }, { metrics: wrongMetrics }),
  ]);
  assert.equal(r1.code, 0, failure(r1) ?? r1.stderr);
  assert.equal(r2.code, 0, failure(r2) ?? r2.stderr);
  const real = JSON.parse(readFileSync(realMetrics, 'utf8'));
  assert.deepEqual(real.adherence, { color: 1, shape: 1, direction: 1, all: 1 });
  assert.ok(real.frechet_distance < 1e-6, `FD ${real.frechet_distance}`);
  assert.equal(real.sampling.forward_calls_per_video, '36');
  assert.equal(real.label, 'real clips');
  const wrong = JSON.parse(readFileSync(wrongMetrics, 'utf8'));
  assert.deepEqual(wrong.adherence, { color: 0, shape: 1, direction: 1, all: 0 });
  assert.ok(wrong.frechet_distance > 0.01);

  const summary = join(tmp, 'report.md');
  const reportTask = makeTask('report', { title: 'Domain check' }, [{ name: 'summary', type: 'file' }], [{ name: 'metrics', type: 'metrics' }, { name: 'videos', type: 'videos' }]);
  const rr = await run(reportTask, { metrics: [realMetrics, wrongMetrics], videos: [realDir] }, { summary });
  assert.equal(rr.code, 0, failure(rr) ?? rr.stderr);
  const md = readFileSync(summary, 'utf8');
  assert.match(md, /^# Domain check/);
  assert.match(md, /\| real clips \| 6 \| 1\.000 \| 1\.000 \| 1\.000 \| 1\.000 \|.*\| 36 \|/);
  assert.match(md, /\| wrong colour \| 6 \| 0\.000 \| 1\.000 \| 1\.000 \| 0\.000 \|/);
  assert.ok(md.includes(encodeURI(join(realDir, `${clips[0]!.prompt}.gif`))));

  writeFileSync(join(tmp, 'junk.json'), '{"x": 1}');
  const bad = await run(reportTask, { metrics: [join(tmp, 'junk.json')] }, { summary: join(tmp, 'never.md') });
  assert.match(failure(bad) ?? '', /report: .*junk\.json is not a cfpipe metrics file/);
});
