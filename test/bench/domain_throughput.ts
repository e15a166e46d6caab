// Throughput of the built-in video domain, each beside a baseline measured in the same run:
//   float16 conversion (ours vs the engine's Float16Array), clips rendered + VAE-encoded per
//   second, LMDB rows written per second in format 2 (lmdb-js) and format 1 (ours) vs a raw
//   file write of the same bytes, eval videos analysed per second, GIF encodes per second.
// Run: npx tsc -p . && node dist/test/bench/domain_throughput.js [clips]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clip, domainConfig } from '../../runner/domain/clips.js';
import { analyzeVideo } from '../../runner/domain/eval.js';
import { f32ToF16, f16ToF32 } from '../../runner/domain/float16.js';
import { LatentLmdbWriter } from '../../runner/domain/lmdb_layout.js';
import { CounterRng } from '../../runner/domain/rng.js';
import { SpaceToDepthVae } from '../../runner/domain/vae.js';
import { encodeGif } from '../../runner/domain/video.js';

const clips = Number(process.argv[2] ?? '512');
const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-bench-domain-'));
const time = (f: () => void) => {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
};
const timeAsync = async (f: () => Promise<void>) => {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
};
try {
  // float16
  const n = 4_000_000;
  const rng = new CounterRng([1]);
  const src = Float32Array.from({ length: n }, () => rng.normal());
  let half: Uint16Array = new Uint16Array(0);
  const ours = time(() => (half = f32ToF16(src)));
  const F16 = (globalThis as unknown as { Float16Array?: { from(a: Float32Array): unknown } }).Float16Array;
  const ref = F16 ? time(() => F16.from(src)) : NaN;
  const back = time(() => f16ToF32(half));
  console.log(`float16 encode: ${(n / ours / 1e6).toFixed(1)} M values/s (Float16Array.from: ${(n / ref / 1e6).toFixed(1)} M/s, ratio ${(ref / ours).toFixed(2)}x); decode ${(n / back / 1e6).toFixed(1)} M values/s`);

  // render + encode
  const cfg = domainConfig();
  const vae = new SpaceToDepthVae(4);
  const latents: Float32Array[] = [];
  const prompts: string[] = [];
  const videos = [] as ReturnType<typeof clip>['video'][];
  const render = time(() => {
    for (let i = 0; i < clips; i++) {
      const c = clip(cfg, 'train', i);
      videos.push(c.video);
      prompts.push(c.prompt);
      latents.push(vae.encodeVideo(c.video));
    }
  });
  console.log(`synth: ${(clips / render).toFixed(0)} clips/s rendered + encoded (9x32x32 → [9, 48, 8, 8])`);

  // LMDB writes
  const rowBytes = latents[0]!.length * 2;
  const raw = time(() => {
    const all = Buffer.alloc(clips * rowBytes);
    latents.forEach((l, i) => Buffer.from(f32ToF16(l).buffer).copy(all, i * rowBytes));
    writeFileSync(join(tmp, 'raw.bin'), all);
  });
  for (const format of [2, 1] as const) {
    const s = await timeAsync(async () => {
      const w = LatentLmdbWriter.create(join(tmp, `lmdb${format}`), { rowShape: [1, 9, 48, 8, 8], format });
      for (let i = 0; i < clips; i++) await w.append(latents[i]!, prompts[i]!);
      await w.finish();
    });
    console.log(`LMDB format ${format}: ${(clips / s).toFixed(0)} rows/s (${((clips * rowBytes) / s / 1e6).toFixed(1)} MB/s); raw file write of the same float16 bytes: ${((clips * rowBytes) / raw / 1e6).toFixed(1)} MB/s (${(s / raw).toFixed(1)}x slower)`);
  }

  // eval and GIF
  const m = Math.min(clips, 200);
  const evalS = time(() => videos.slice(0, m).forEach((v) => analyzeVideo(v)));
  const gifS = time(() => videos.slice(0, m).forEach((v) => encodeGif(v)));
  console.log(`eval: ${(m / evalS).toFixed(0)} videos/s analysed; GIF: ${(m / gifS).toFixed(0)} videos/s encoded (8x upscale)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
