// `cfpipe status --device` and `cfpipe explain --device` through the real CLI: the keys and
// states are those `cfpipe run --device` uses, on this machine and on a simulated GPU machine
// (a fake nvidia-smi listing two H200s: with no CUDA addon built the "GPU" run computes on the
// CPU backend, but its results are keyed by cuda:sm90 as on a real one); a task done under
// another device class says so instead of "never run"; bad or impossible devices are refused
// with run's messages.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { gpuMachines, type Machine } from '../util/gpu-machine.js';

// A device-sensitive stage (synth: keyed by device class) and an exec stage reading it (keyed
// the same on any device, but through its upstream key it follows the synth stage's device).
const PIPELINE = `pipeline "status-device"

param seed: int = 0

stage data: synth {
  clips = 2
  heldout_clips = 1
  seed = seed
}

stage count: exec {
  command = ["sh", "-c", "wc -l < $CFPIPE_IN_PROMPTS > $CFPIPE_OUT_TEXT"]
  prompts = data.prompts
  output text: file
}
`;

const { project, cfpipe, dryRunKeys } = gpuMachines('status-device', PIPELINE);

interface StatusRow {
  id: string;
  state: string;
  detail: string;
  key: string;
  doneOn?: string;
}

function statusJson(root: string, machine: Machine, ...args: string[]): Map<string, StatusRow> {
  const r = cfpipe(root, machine, 'status', 'p.cf', '--json', ...args);
  assert.equal(r.code, 0, r.err);
  return new Map((JSON.parse(r.out) as { tasks: StatusRow[] }).tasks.map((t) => [t.id, t]));
}

/** A project after `cfpipe run p.cf --device D` on `machine`. */
function ranOn(machine: Machine, device: string): string {
  const root = project();
  const ran = cfpipe(root, machine, 'run', 'p.cf', '--device', device);
  assert.equal(ran.code, 0, ran.out + ran.err);
  return root;
}

const keysOf = (rows: Map<string, StatusRow>): Map<string, string> => new Map([...rows].map(([id, row]) => [id, row.key]));
const statesOf = (rows: Map<string, StatusRow>): string[][] => [...rows.values()].map((r) => [r.id, r.state]);

describe('cfpipe status and explain --device', () => {
  test('after a GPU run: with --device cuda (or auto on that machine) every task is fresh, under the keys run uses', () => {
    const root = ranOn('two-h200', 'cuda');
    const onGpu = statusJson(root, 'two-h200', '--device', 'cuda');
    assert.deepEqual(statesOf(onGpu), [['data', 'fresh'], ['count', 'fresh']]);
    assert.deepEqual(keysOf(onGpu), dryRunKeys(root, 'two-h200', '--device', 'cuda'), 'the keys of run --device cuda');
    assert.deepEqual(statusJson(root, 'two-h200'), onGpu, 'auto is cuda on a GPU machine');
    assert.deepEqual(keysOf(statusJson(root, 'two-h200', '--device', 'cpu')), dryRunKeys(root, 'two-h200', '--device', 'cpu'), 'and the keys of run --device cpu');

    const text = cfpipe(root, 'two-h200', 'status', 'p.cf', '--device', 'cuda');
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^data\s+fresh\s+cached$/m);
    assert.match(text.out, /^count\s+fresh\s+cached$/m);
    const explain = cfpipe(root, 'two-h200', 'explain', 'p.cf', 'data', '--device', 'cuda');
    assert.equal(explain.code, 0, explain.err);
    assert.equal(explain.out, 'data: fresh — nothing changed since its last success\n');
    assert.equal(cfpipe(root, 'two-h200', 'explain', 'count').out, 'count: fresh — nothing changed since its last success\n', 'the last run\'s file, auto device');
  });

  test('after a GPU run, seen on the CPU: "done on cuda:sm90", not "never run" or a changed input', () => {
    const root = ranOn('two-h200', 'cuda');
    // The GPU machine asked for the CPU: --device cuda there shows the result.
    const cpuThere = statusJson(root, 'two-h200', '--device', 'cpu');
    assert.deepEqual(statesOf(cpuThere), [['data', 'run'], ['count', 'run']], 'a CPU run would run both');
    for (const row of cpuThere.values()) {
      assert.equal(row.detail, 'done on cuda:sm90, not on cpu (add --device cuda to see it)', row.id);
      assert.equal(row.doneOn, 'cuda:sm90');
    }
    const text = cfpipe(root, 'two-h200', 'status', 'p.cf', '--device', 'cpu');
    assert.match(text.out, /^data\s+run\s+done on cuda:sm90, not on cpu \(add --device cuda to see it\)$/m);
    const explain = cfpipe(root, 'two-h200', 'explain', 'p.cf', 'count', '--device', 'cpu');
    assert.equal(explain.code, 0, explain.err);
    assert.equal(explain.out, 'count: run — done on cuda:sm90 with these inputs and settings, not on cpu (add --device cuda to see it)\n');

    // A machine without GPU (auto is cpu there): the hint says where --device cuda shows it.
    const noGpu = statusJson(root, 'no-gpu');
    assert.deepEqual(keysOf(noGpu), keysOf(cpuThere), 'cpu keys are the same on any machine');
    assert.equal(noGpu.get('data')!.detail, 'done on cuda:sm90, not on cpu (--device cuda shows it on a cuda:sm90 machine; this one has no GPU)');
    assert.match(cfpipe(root, 'no-gpu', 'explain', 'p.cf', 'data').out, /^data: run — done on cuda:sm90 with these inputs and settings, not on cpu \(--device cuda shows it/);
    // Without a pipeline, status lists the last attempts with the device of GPU-keyed ones.
    assert.match(cfpipe(root, 'no-gpu', 'status').out, /^data\s+done\s+.*\bon cuda:sm90$/m);

    // A changed setting is a miss on every device: explained as a key diff, with no device hint.
    const changed = cfpipe(root, 'two-h200', 'explain', 'p.cf', 'data', '--device', 'cpu', '--set', 'seed=1');
    assert.equal(changed.code, 0, changed.err);
    assert.match(changed.out, /^data: run — changed since its last success/);
    assert.match(changed.out, /^ {2}device: "cuda:sm90" → "cpu"$/m);
    assert.match(changed.out, /^ {2}params\.seed: 0 → 1$/m);
    assert.doesNotMatch(changed.out, /done on/);
    // Once run on the CPU too, both devices are fresh and no hint is left.
    assert.equal(cfpipe(root, 'two-h200', 'run', 'p.cf', '--device', 'cpu').code, 0);
    assert.deepEqual(statesOf(statusJson(root, 'two-h200', '--device', 'cpu')), [['data', 'fresh'], ['count', 'fresh']]);
    assert.deepEqual(statesOf(statusJson(root, 'two-h200', '--device', 'cuda')), [['data', 'fresh'], ['count', 'fresh']]);
  });

  test('after a CPU run, seen on a GPU machine: "done on cpu (add --device cpu to see it)"', () => {
    const root = ranOn('no-gpu', 'cpu');
    assert.deepEqual(statesOf(statusJson(root, 'no-gpu')), [['data', 'fresh'], ['count', 'fresh']]);
    assert.deepEqual(statusJson(root, 'two-h200', '--device', 'cpu'), statusJson(root, 'no-gpu', '--device', 'cpu'));
    const onGpu = statusJson(root, 'two-h200');
    assert.deepEqual(keysOf(onGpu), dryRunKeys(root, 'two-h200'));
    assert.deepEqual([...onGpu.values()].map((r) => [r.id, r.state, r.detail, r.doneOn]), [
      ['data', 'run', 'done on cpu, not on cuda:sm90 (add --device cpu to see it)', 'cpu'],
      ['count', 'run', 'done on cpu, not on cuda:sm90 (add --device cpu to see it)', 'cpu'],
    ]);
  });

  test('a --device run would refuse, or a malformed one, is refused with run\'s message', () => {
    const root = project();
    for (const [machine, device, message] of [
      ['no-gpu', 'cuda', '--device cuda: this machine has no GPU (nvidia-smi -L lists none)'],
      ['two-h200', 'cuda:7', '--device cuda:7: there is no GPU 7; this machine has 2 GPUs (0, 1)'],
      ['no-gpu', 'gpu', '--device gpu: expected cpu, cuda, cuda:N or auto'],
    ] as const) {
      const run = cfpipe(root, machine, 'run', 'p.cf', '--device', device);
      assert.equal(run.err, `cfpipe: ${message}\n`);
      for (const args of [['status', 'p.cf'], ['explain', 'p.cf', 'data']]) {
        const r = cfpipe(root, machine, ...args, '--device', device);
        assert.equal(r.code, 2, `${args[0]} --device ${device}`);
        assert.equal(r.out, '');
        assert.equal(r.err, run.err, `${args[0]}: the same message as run`);
      }
    }
    const noFile = cfpipe(root, 'no-gpu', 'status', '--device', 'cpu');
    assert.equal(noFile.code, 2);
    assert.equal(noFile.err, 'cfpipe: status --device: name the pipeline its keys are for: cfpipe status FILE --device D\n');
    assert.equal(readdirSync(root).includes('.cfpipe'), false, 'nothing was created');
  });

  test('--help of status and explain describes --device', () => {
    for (const command of ['status', 'explain']) {
      const help = cfpipe(project(), 'no-gpu', command, '--help');
      assert.equal(help.code, 0);
      assert.match(help.out, /--device D +cpu, cuda, cuda:N or auto \(default\), as for `cfpipe run`/, command);
    }
  });
});
