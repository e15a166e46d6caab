// The generated repositories the fetch tests and benchmark serve (no fixture files on disk).

import { bytesOf } from './hub_server.js';
import type { Repo, RepoFile } from './hub_server.js';

export const COMMIT_MAIN = 'a'.repeat(39) + '1';
export const COMMIT_V1 = 'b'.repeat(39) + '2';
export const LFS_SIZE = 4 * 1024 * 1024 + 12345; // "an LFS-sized file of a few MB", not chunk-aligned

export const modelFiles: readonly RepoFile[] = [
  { path: 'config.json', content: Buffer.from('{"dim": 64, "layers": 2}\n'), lfs: false },
  { path: 'README.md', content: Buffer.from('# tiny video model\n'), lfs: false },
  { path: 'weights/model.safetensors', content: bytesOf(LFS_SIZE, 7), lfs: true },
  { path: 'weights/ema.safetensors', content: bytesOf(300_001, 8), lfs: true },
  { path: 'notes/train log.txt', content: Buffer.from('step 1 loss 0.5\n'), lfs: false },
];

export const modelFilesV1: readonly RepoFile[] = [
  { path: 'config.json', content: Buffer.from('{"dim": 32, "layers": 1}\n'), lfs: false },
  { path: 'weights/model.safetensors', content: bytesOf(100_000, 9), lfs: true },
];

export function testRepos(): Repo[] {
  return [
    { type: 'model', id: 'acme/tiny-video', access: 'public', refs: { main: COMMIT_MAIN, v1: COMMIT_V1 }, commits: { [COMMIT_MAIN]: modelFiles, [COMMIT_V1]: modelFilesV1 } },
    {
      type: 'dataset',
      id: 'acme/clips',
      access: 'public',
      refs: { main: COMMIT_MAIN },
      commits: {
        [COMMIT_MAIN]: [
          { path: 'ODE6KCausal_chunkwise_0/data.mdb', content: bytesOf(1_000_003, 11), lfs: true },
          { path: 'ODE6KCausal_chunkwise_0/lock.mdb', content: bytesOf(8192, 12), lfs: false },
          { path: 'ODE6KCausal_chunkwise_1/data.mdb', content: bytesOf(700_001, 13), lfs: true },
        ],
      },
    },
    { type: 'model', id: 'acme/private', access: 'private', refs: { main: COMMIT_MAIN }, commits: { [COMMIT_MAIN]: modelFiles } },
    { type: 'model', id: 'acme/gated', access: 'gated', refs: { main: COMMIT_MAIN }, commits: { [COMMIT_MAIN]: modelFiles } },
  ];
}
