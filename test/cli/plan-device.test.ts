// `cfpipe plan --device`: the keys and states plan shows are those `cfpipe run --device` would
// use, on this machine and on a simulated GPU machine (a fake nvidia-smi on PATH: the probe the
// runner reads, not the product), with the device of each task off the CPU in text and JSON.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { gpuMachines, type Machine } from '../util/gpu-machine.js';

const PIPELINE = `pipeline "plan-device"

stage data: synth {
  clips = 2
  heldout_clips = 1
  seed = 0
}

stage note: exec {
  command = ["sh", "-c", "echo hi > $CFPIPE_OUT_TEXT"]
  output text: file
}
`;

const { project, cfpipe, dryRunKeys } = gpuMachines('plan-device', PIPELINE);

interface PlanTask {
  id: string;
  key: string;
  state: string;
  device?: string;
  resources: { gpus: number };
}

function planJson(root: string, machine: Machine, ...args: string[]): Map<string, PlanTask> {
  const r = cfpipe(root, machine, 'plan', 'p.cf', '--format', 'json', ...args);
  assert.equal(r.code, 0, r.err);
  return new Map((JSON.parse(r.out) as { tasks: PlanTask[] }).tasks.map((t) => [t.id, t]));
}

describe('cfpipe plan --device', () => {
  test('--device cpu is the default on a machine without GPUs, and auto is cpu there', () => {
    const root = project();
    const plain = cfpipe(root, 'no-gpu', 'plan', 'p.cf');
    assert.equal(plain.code, 0, plain.err);
    assert.equal(cfpipe(root, 'no-gpu', 'plan', 'p.cf', '--device', 'cpu').out, plain.out);
    assert.equal(cfpipe(root, 'no-gpu', 'plan', 'p.cf', '--device', 'auto').out, plain.out);
    assert.doesNotMatch(plain.out, /cuda|\bcpu\b/, 'no device column when every task is on the CPU');
    const json = cfpipe(root, 'no-gpu', 'plan', 'p.cf', '--format', 'json');
    assert.equal(cfpipe(root, 'no-gpu', 'plan', 'p.cf', '--format', 'json', '--device', 'cpu').out, json.out);
    assert.ok([...planJson(root, 'no-gpu').values()].every((t) => !('device' in t)), 'no device field for CPU tasks');
  });

  test('the keys plan shows are the keys run uses, on the CPU and on a GPU', () => {
    const root = project();
    const cpuPlan = planJson(root, 'no-gpu');
    for (const [id, key] of dryRunKeys(root, 'no-gpu')) assert.equal(cpuPlan.get(id)?.key, key, id);
    const gpuPlan = planJson(root, 'two-h200', '--device', 'cuda');
    for (const [id, key] of dryRunKeys(root, 'two-h200', '--device', 'cuda')) assert.equal(gpuPlan.get(id)?.key, key, id);
  });

  test('--device cuda on a GPU machine: a device-sensitive stage gets a GPU key and is not cached after a CPU run', () => {
    const root = project();
    const ran = cfpipe(root, 'no-gpu', 'run', 'p.cf', '--device', 'cpu');
    assert.equal(ran.code, 0, ran.out + ran.err);
    const onCpu = planJson(root, 'two-h200', '--device', 'cpu');
    assert.deepEqual([...onCpu.values()].map((t) => [t.id, t.state]), [['data', 'fresh'], ['note', 'fresh']]);

    const onGpu = planJson(root, 'two-h200', '--device', 'cuda');
    const data = onGpu.get('data')!;
    const note = onGpu.get('note')!;
    assert.notEqual(data.key, onCpu.get('data')!.key, 'synth is keyed by its device class');
    assert.equal(data.state, 'run');
    assert.equal(data.device, 'cuda:sm90');
    assert.equal(data.resources.gpus, 1, 'placed on one GPU, as run places it');
    assert.equal(note.key, onCpu.get('note')!.key, 'an exec stage is keyed the same on any device');
    assert.equal(note.state, 'fresh');
    assert.equal('device' in note, false);
    assert.deepEqual(planJson(root, 'two-h200'), onGpu, 'auto is cuda on a GPU machine');
    assert.equal(planJson(root, 'two-h200', '--device', 'cuda:1').get('data')!.key, data.key, 'one class for every GPU of the machine');

    const text = cfpipe(root, 'two-h200', 'plan', 'p.cf', '--device', 'cuda');
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^pipeline plan-device \(p\.cf\): 2 tasks, 1 run, 1 fresh$/m);
    assert.match(text.out, new RegExp(`^run {7}${data.key.slice(0, 12)}  data  synth  cuda:sm90  \\S`, 'm'));
    assert.match(text.out, new RegExp(`^fresh {5}${note.key.slice(0, 12)}  note  exec   cpu {8}cached$`, 'm'));
  });

  test('--device cuda without a GPU, and cuda:N beyond the GPUs, are refused as run refuses them', () => {
    const root = project();
    for (const [machine, device, message] of [
      ['no-gpu', 'cuda', '--device cuda: this machine has no GPU (nvidia-smi -L lists none)'],
      ['two-h200', 'cuda:7', '--device cuda:7: there is no GPU 7; this machine has 2 GPUs (0, 1)'],
    ] as const) {
      const plan = cfpipe(root, machine, 'plan', 'p.cf', '--device', device);
      const run = cfpipe(root, machine, 'run', 'p.cf', '--device', device);
      assert.equal(plan.code, 2, plan.err);
      assert.equal(plan.out, '');
      assert.equal(plan.err, `cfpipe: ${message}\n`);
      assert.equal(run.code, plan.code);
      assert.equal(run.err, plan.err, 'the same message as run');
    }
    assert.equal(readdirSync(root).includes('.cfpipe'), false, 'nothing was created');
  });

  test('a malformed --device is a usage error with run\'s message and no stack', () => {
    const root = project();
    for (const bad of ['gpu', 'cuda:', 'cuda:x']) {
      const plan = cfpipe(root, 'no-gpu', 'plan', 'p.cf', '--device', bad);
      assert.equal(plan.code, 2);
      assert.equal(plan.err, `cfpipe: --device ${bad}: expected cpu, cuda, cuda:N or auto\n`);
      assert.equal(cfpipe(root, 'no-gpu', 'run', 'p.cf', '--device', bad).err, plan.err);
    }
  });
});
