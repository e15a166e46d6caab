import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync, crc32 } from 'node:zlib';
import { clip, domainConfig } from '../../runner/domain/clips.js';
import { encodeGif, encodePng, framesToPng, hasFfmpeg, upscale, videoBaseName, writeMp4 } from '../../runner/domain/video.js';
import { readVideoIndex, readVideoSet, writeVideoSet } from '../../runner/domain/video_set.js';
import { CounterRng } from '../../runner/domain/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-video-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const cfg = domainConfig();
const sample = clip(cfg, 'train', 4);

/** Decodes our own PNGs (8-bit RGB, filter 0), checking every chunk's CRC. */
function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    assert.equal(png.readUInt32BE(off + 8 + len), crc32(png.subarray(off + 4, off + 8 + len)), `${type} CRC`);
    if (type === 'IHDR') [width, height] = [data.readUInt32BE(0), data.readUInt32BE(4)];
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (width * 3 + 1)], 0);
    rgb.set(raw.subarray(y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1)), y * width * 3);
  }
  return { width, height, rgb };
}

test('upscale repeats each pixel factor×factor times', () => {
  const big = upscale(sample.video, 3);
  assert.equal(big.width, 96);
  for (const [y, x] of [[0, 0], [50, 71], [95, 95]] as const) {
    const src = ((2 * 32 + Math.floor(y / 3)) * 32 + Math.floor(x / 3)) * 3;
    const dst = ((2 * 96 + y) * 96 + x) * 3;
    assert.deepEqual([...big.rgb.subarray(dst, dst + 3)], [...sample.video.rgb.subarray(src, src + 3)]);
  }
});

test('PNG encoder writes valid chunks and exact pixels; the frame strip holds every frame', () => {
  const rng = new CounterRng([5]);
  const rgb = new Uint8Array(7 * 5 * 3).map(() => rng.int(256));
  const decoded = decodePng(encodePng(rgb, 7, 5));
  assert.deepEqual(decoded, { width: 7, height: 5, rgb });
  const strip = decodePng(framesToPng(sample.video, { scale: 2 }));
  assert.equal(strip.height, 64);
  assert.equal(strip.width, 9 * 64 + 8 * 1);
  const t = 6;
  const x = 10;
  const y = 20;
  const stripOffset = (y * 2 * strip.width + t * 65 + x * 2) * 3;
  const srcOffset = ((t * 32 + y) * 32 + x) * 3;
  assert.deepEqual([...strip.rgb.subarray(stripOffset, stripOffset + 3)], [...sample.video.rgb.subarray(srcOffset, srcOffset + 3)]);
});

function ffmpegDecode(path: string, width: number, height: number): Uint8Array {
  const out = spawnSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 28 });
  assert.equal(out.status, 0, out.stderr?.toString());
  assert.equal(out.stdout.length % (width * height * 3), 0);
  return new Uint8Array(out.stdout);
}

test('GIF: header, size and loop; ffmpeg decodes every frame to the exact upscaled pixels', () => {
  const gif = encodeGif(sample.video, { scale: 4 });
  assert.equal(Buffer.from(gif.subarray(0, 6)).toString('latin1'), 'GIF89a');
  assert.equal(gif[6]! | (gif[7]! << 8), 128);
  assert.equal(gif[8]! | (gif[9]! << 8), 128);
  assert.ok(Buffer.from(gif).includes(Buffer.from('NETSCAPE2.0')), 'loops');
  if (!hasFfmpeg()) return;
  const path = join(tmp, 'x.gif');
  writeFileSync(path, gif);
  const decoded = ffmpegDecode(path, 128, 128);
  assert.deepEqual(decoded, upscale(sample.video, 4).rgb);
});

test('mp4 via ffmpeg: 9 frames of 256x256 at 16 fps, colours close to the source', { skip: hasFfmpeg() ? false : 'ffmpeg is not on PATH' }, async () => {
  const path = join(tmp, 'x.mp4');
  await writeMp4(sample.video, path);
  const probe = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames,width,height,r_frame_rate,codec_name', '-of', 'json', path], { encoding: 'utf8' });
  const stream = JSON.parse(probe.stdout).streams[0];
  assert.deepEqual(stream, { codec_name: 'h264', width: 256, height: 256, r_frame_rate: '16/1', nb_read_frames: '9' });
  const decoded = ffmpegDecode(path, 256, 256);
  const ref = upscale(sample.video, 8).rgb;
  let err = 0;
  for (let i = 0; i < ref.length; i++) err += Math.abs(decoded[i]! - ref[i]!);
  assert.ok(err / ref.length < 8, `mean abs error ${err / ref.length}`);
});

test('file names follow upstream (first 100 characters) and are safe', () => {
  assert.equal(videoBaseName('a red disc moving left'), 'a red disc moving left');
  assert.equal(videoBaseName('x'.repeat(150)).length, 100);
  assert.equal(videoBaseName('a/b\\c:d*e?"<>|\n.'), 'a_b_c_d_e______');
  assert.equal(videoBaseName(' ... '), 'video');
  assert.equal(Array.from(videoBaseName('é'.repeat(120))).length, 100);
});

test('a video set round-trips exact pixels and names duplicates apart', async () => {
  const dir = join(tmp, 'set');
  const clips = [0, 1, 2].map((i) => clip(cfg, 'heldout', i)).map((c) => ({ prompt: c.prompt, video: c.video }));
  clips.push({ prompt: clips[0]!.prompt, video: clip(cfg, 'heldout', 9).video });
  const entries = await writeVideoSet(dir, clips, { png: true, mp4: false, scale: 2 });
  assert.equal(entries[3]!.gif, `${clips[0]!.prompt} (2).gif`);
  assert.deepEqual(readVideoIndex(dir), entries);
  for (const e of entries) assert.ok(existsSync(join(dir, e.gif)) && existsSync(join(dir, e.png!)));
  const back = readVideoSet(dir);
  assert.deepEqual(back.map((c) => c.prompt), clips.map((c) => c.prompt));
  back.forEach((c, i) => assert.deepEqual(c.video.rgb, clips[i]!.video.rgb));
  assert.ok(readFileSync(join(dir, entries[1]!.gif)).length > 100);
});
