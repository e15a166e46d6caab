// The task-started event names the machine's GPUs a task holds (the worker itself sees them as
// cuda:0 through CUDA_VISIBLE_DEVICES), and the plain UI prints them: on a simulated machine
// with two H200s, two one-GPU tasks that run side by side get one GPU each.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gpuMachines } from '../util/gpu-machine.js';

const PIPELINE = `pipeline "gpu-events"

stage a: exec {
  command = ["sh", "-c", "sleep 1; echo $CUDA_VISIBLE_DEVICES > $CFPIPE_OUT_OUT # a"]
  output out: file
  gpus = 1
  publish out to "out/a.txt"
}

stage b: exec {
  command = ["sh", "-c", "sleep 1; echo $CUDA_VISIBLE_DEVICES > $CFPIPE_OUT_OUT # b"]
  output out: file
  gpus = 1
  publish out to "out/b.txt"
}
`;

describe('task-started on GPUs', () => {
  const machines = gpuMachines('gpu-events', PIPELINE);

  test('each task names the GPU it holds, in the event and in the plain output', () => {
    const root = machines.project();
    const json = machines.cfpipe(root, 'two-h200', 'run', 'p.cf', '--device', 'cuda', '--json');
    assert.equal(json.code, 0, json.err);
    const started = json.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; id?: string; device?: string; gpus?: number[] }).filter((e) => e.type === 'task-started');
    assert.equal(started.length, 2);
    for (const e of started) {
      assert.equal(e.device, 'cuda');
      const seen = readFileSync(join(root, 'out', `${e.id}.txt`), 'utf8').trim();
      assert.deepEqual(e.gpus, [Number(seen)], `${e.id} saw CUDA_VISIBLE_DEVICES=${seen}`);
    }
    assert.deepEqual(started.map((e) => e.gpus![0]).sort(), [0, 1], 'side by side, one GPU each');

    const again = machines.project();
    const plain = machines.cfpipe(again, 'two-h200', 'run', 'p.cf', '--device', 'cuda');
    assert.equal(plain.code, 0, plain.err);
    assert.match(plain.out + plain.err, /start\s+a\s+on cuda \(GPU [01]\)/);
  });
});
