// Merges of shards written the way upstream writes them — by Debian's python3-lmdb (LMDB 0.9, data
// format 1), with upstream's key layout (spec §1.4) — through the real merge code and the real
// worker. The expected output is computed in Python from the shards by upstream's rules (§1.3), and
// the format-1 output is read back with Python lmdb, the library upstream's trainers use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPythonWithLmdb, runPython } from '../domain/python.js';
import { makeTask, runWorker } from '../fetch/worker_harness.js';
import { repoRoot } from '../util/paths.js';
import { snapshotInputs } from '../merge/fixture.js';
import { lmdbDataFormat } from '../../runner/domain/lmdb_layout.js';
import { planMerge } from '../../runner/merge/plan.js';
import { mergeShards } from '../../runner/merge/merge.js';
import { listV1Keys } from '../../runner/merge/lmdb_v1_keys.js';
import { copyBytes, openShardReadOnly } from '../../runner/merge/shards.js';

const python = findPythonWithLmdb();
const skip = python === undefined ? 'python3 with the lmdb and numpy modules is not installed (Debian: python3-lmdb python3-numpy)' : false;

// Writes shards as upstream's tools do: fp16 rows, UTF-8 prompts, ASCII shapes, map size 1 GiB.
const WRITE_SHARDS = `
import sys, lmdb, numpy as np
base, count, rows0, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(x) for x in sys.argv[4].split(',')]
import os; os.makedirs(os.path.dirname(base), exist_ok=True)
for s in range(count):
    n = rows0 + s
    env = lmdb.open(f"{base}_{s}", map_size=1 << 30)
    rng = np.random.default_rng(100 + s)
    with env.begin(write=True) as txn:
        for i in range(n):
            row = rng.standard_normal(shape).astype(np.float16)
            txn.put(f"latents_{i}_data".encode(), row.tobytes())
            txn.put(f"prompts_{i}_data".encode(), f"shard {s} row {i}: a red disc moving left, \\u00e9t\\u00e9".encode())
        txn.put(b"latents_shape", " ".join(map(str, [n] + shape)).encode())
        txn.put(b"prompts_shape", str(n).encode())
    env.close()
`;

// Reads an LMDB (any format Python lmdb opens: format 1) and prints sha256 per key, sorted.
const DIGEST_DB = `
import sys, lmdb, hashlib, json
env = lmdb.open(sys.argv[1], readonly=True, lock=False)
with env.begin() as txn:
    print(json.dumps({k.decode(): hashlib.sha256(v).hexdigest() for k, v in txn.cursor()}, sort_keys=True))
`;

// Upstream's rules from the shards: rows re-indexed in shard order, whole (full) or the last entry (clean).
const EXPECTED = `
import sys, lmdb, hashlib, json, numpy as np
mode, paths = sys.argv[1], sys.argv[2:]
out, n = {}, 0
for p in paths:
    env = lmdb.open(p, readonly=True, lock=False)
    with env.begin() as txn:
        shape = [int(x) for x in txn.get(b"latents_shape").decode().split()]
        for i in range(shape[0]):
            lat = np.frombuffer(txn.get(f"latents_{i}_data".encode()), dtype=np.float16).reshape(shape[1:])
            if mode == "clean":
                lat = lat[-1] if lat.ndim == 5 else lat
                lat = lat[None]
            out[f"latents_{n}_data"] = hashlib.sha256(np.ascontiguousarray(lat).tobytes()).hexdigest()
            out[f"prompts_{n}_data"] = hashlib.sha256(txn.get(f"prompts_{i}_data".encode())).hexdigest()
            n += 1
        row = shape[1:] if mode == "full" else [1] + (shape[2:] if len(shape) == 6 else shape[1:])
    env.close()
out["latents_shape"] = hashlib.sha256(" ".join(map(str, [n] + row)).encode()).hexdigest()
out["prompts_shape"] = hashlib.sha256(str(n).encode()).hexdigest()
print(json.dumps(out, sort_keys=True))
`;

test('format-1 shards written by Python lmdb merge (full and clean, format 1 and 2 out); Python lmdb reads the result; inputs untouched', { skip }, async () => {
  const py = python!;
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-merge-v1-'));
  try {
    const base = join(scratch, 'dataset', 'ODE6KCausal_framewise');
    // 3 shards of 7, 8, 9 rows of [6, 3, 4, 6, 8]: 2304 B per row, so latents go to overflow pages.
    runPython(py, WRITE_SHARDS, [base, '3', '7', '6,3,4,6,8']);
    const shards = [0, 1, 2].map((i) => `${base}_${i}`);
    for (const s of shards) assert.equal(lmdbDataFormat(s), 1, `${s} is format 1`);
    assert.deepEqual(listV1Keys(shards[0]!).map(String).filter((k) => k.endsWith('_shape')), ['latents_shape', 'prompts_shape']);
    const before = snapshotInputs(shards);

    for (const mode of ['full', 'clean'] as const) {
      const expected = JSON.parse(runPython(py, EXPECTED, [mode, ...shards])) as Record<string, string>;
      const planned = planMerge(shards, mode);
      assert.ok(planned.ok, planned.ok ? '' : planned.problems.join('; '));
      for (const format of [1, 2] as const) {
        const out = join(scratch, `${mode}_${format}`);
        const r = await mergeShards({ plan: planned.plan, outPath: out, workDir: join(scratch, `work_${mode}_${format}`), format, batchRows: 5 });
        assert.equal(r.rows, 24);
        assert.equal(r.format, format);
        assert.equal(lmdbDataFormat(out), format);
        if (format === 1) {
          // Upstream's own library reads it, key for key.
          assert.deepEqual(JSON.parse(runPython(py, DIGEST_DB, [out])), expected, `${mode} format 1`);
        } else {
          // Format 2 is read back by cfpipe's own merge reader (Python's LMDB 0.9 cannot open it).
          const back = planMerge([out], mode === 'full' ? 'full' : 'clean');
          assert.ok(back.ok);
        }
      }
    }
    // Default output format: the shards' own (1), through the kind run by the real worker.
    const task = makeTask('merge', { mode: 'clean', pattern: 'ODE6KCausal_framewise_*' }, [{ name: 'dataset', type: 'dataset' }], [{ name: 'parts', type: 'dataset' }]);
    const out = join(scratch, 'kind_out');
    const run = await runWorker({ task, inputs: { parts: [join(scratch, 'dataset')] }, outputs: { dataset: out }, workDir: join(scratch, 'work_kind'), root: repoRoot, device: 'cpu' });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /LMDB data format 1/);
    assert.equal(lmdbDataFormat(out), 1);
    assert.deepEqual(JSON.parse(runPython(py, DIGEST_DB, [out])), JSON.parse(runPython(py, EXPECTED, ['clean', ...shards])));
    assert.equal(snapshotInputs(shards), before, 'the shards are unchanged');
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});

test('a format-2 merge of Python-written shards is read back equal to the format-1 one', { skip }, async () => {
  const py = python!;
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-merge-v1b-'));
  try {
    const base = join(scratch, 'ODE6KCausal_chunkwise');
    runPython(py, WRITE_SHARDS, [base, '2', '3', '6,2,2,4,4']);
    const shards = [`${base}_0`, `${base}_1`];
    const planned = planMerge(shards, 'full');
    assert.ok(planned.ok);
    await mergeShards({ plan: planned.plan, outPath: join(scratch, 'v1'), workDir: join(scratch, 'w1'), format: 1 });
    await mergeShards({ plan: planned.plan, outPath: join(scratch, 'v2'), workDir: join(scratch, 'w2'), format: 2 });
        const a = openShardReadOnly(join(scratch, 'v1'));
    const b = openShardReadOnly(join(scratch, 'v2'));
    const keysA = [...a.keys()].sort();
    assert.deepEqual([...b.keys()].sort(), keysA);
    assert.equal(keysA.length, 2 * 7 + 2);
    for (const k of keysA) {
      const va = a.get(k)!;
      const vb = b.get(k)!;
      assert.ok(copyBytes(va, 0, va.length).equals(copyBytes(vb, 0, vb.length)), k);
    }
    await a.close();
    await b.close();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
