// `--device cpu|cuda|cuda:N|auto` and a stage's own `device`: parsing, placement of each task
// (GPU counts and the ids it may take), the device class in the effective key, the scheduler
// keeping a pinned task on its GPU, and the real CLI refusing what this machine cannot do.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readDeviceFlag } from '../../runner/cli/device-option.js';
import { parseDevice, placeTask, placeTasks, placedTask, needsGpuDetection, type Placement } from '../../runner/exec/device.js';
import { placeGraph, taskDevice } from '../../runner/exec/place-graph.js';
import { detectGpus } from '../../runner/exec/resources.js';
import { schedule } from '../../runner/exec/scheduler.js';
import type { Task } from '../../runner/graph.js';
import { effectiveKeys } from '../../runner/store/effective-key.js';
import { cfpipeBin } from '../util/paths.js';
import { makeGraph } from './fixtures/graphs.js';
import { tempRoot } from './fixtures/harness.js';

const withDevice = (task: Task, device: string): Task => ({ ...task, resources: { ...task.resources, device } });
const [train, exec, twoGpus] = makeGraph([
  { id: 'train', kind: 'train', params: { steps: 1 } },
  { id: 'exec', kind: 'exec', params: { command: 'true' } },
  { id: 'wide', kind: 'exec', params: { command: 'true' }, gpus: 2 },
]).tasks as [Task, Task, Task];

const place = (task: Task, run: string, detected: number[]): Placement | string => placeTask(task, parseDevice(run)!, detected);

describe('device requests', () => {
  test('parse cpu, cuda, cuda:N, auto and nothing else', () => {
    assert.deepEqual(parseDevice('cpu'), { kind: 'cpu' });
    assert.deepEqual(parseDevice('auto'), { kind: 'auto' });
    assert.deepEqual(parseDevice('cuda'), { kind: 'cuda' });
    assert.deepEqual(parseDevice('CUDA:3'), { kind: 'cuda', index: 3 });
    for (const bad of ['gpu', 'cuda:', 'cuda:-1', 'cuda:x', 'cuda:1,2', '']) assert.equal(parseDevice(bad), undefined, bad);
  });

  test('placement: cpu takes no GPU; cuda gives a native kind one and other kinds what they declare', () => {
    assert.deepEqual(place(train, 'cpu', [0, 1]), { gpus: 0, allowed: [] });
    assert.deepEqual(place(twoGpus, 'cpu', [0, 1]), { gpus: 0, allowed: [] });
    assert.deepEqual(place(train, 'cuda', [0, 1]), { gpus: 1, allowed: [0, 1] });
    assert.deepEqual(place(exec, 'cuda', [0, 1]), { gpus: 0, allowed: [0, 1] });
    assert.deepEqual(place(twoGpus, 'cuda', [0, 1]), { gpus: 2, allowed: [0, 1] });
    assert.deepEqual(place(train, 'auto', [0, 1]), { gpus: 1, allowed: [0, 1] });
    assert.deepEqual(place(train, 'auto', []), { gpus: 0, allowed: [] });
    assert.deepEqual(place(train, 'cuda:1', [0, 1]), { gpus: 1, allowed: [1] });
    // More than it may use: placed as asked, and the scheduler fails that task alone.
    assert.deepEqual(place(twoGpus, 'cuda:1', [0, 1]), { gpus: 2, allowed: [1] });
  });

  test('placement refuses what the machine cannot do, naming the flag or the stage', () => {
    assert.equal(place(train, 'cuda', []), '--device cuda: this machine has no GPU (nvidia-smi -L lists none)');
    assert.equal(place(train, 'cuda:7', [0, 1]), '--device cuda:7: there is no GPU 7; this machine has 2 GPUs (0, 1)');
    assert.equal(place(withDevice(train, 'cuda:2'), 'cpu', [0]), 'stage train (device = "cuda:2"): there is no GPU 2; this machine has 1 GPU (0)');
  });

  test('a stage\'s own device wins over the run\'s', () => {
    assert.deepEqual(place(withDevice(train, 'cpu'), 'cuda', [0]), { gpus: 0, allowed: [] });
    assert.deepEqual(place(withDevice(train, 'cuda:1'), 'cpu', [0, 1]), { gpus: 1, allowed: [1] });
  });

  test('a task outside the selection that cannot be placed does not refuse the run', () => {
    const tasks = [withDevice(train, 'cuda'), exec];
    const narrow = placeTasks(tasks, { kind: 'cpu' }, [], new Set(['exec']));
    assert.ok(narrow.ok);
    const wide = placeTasks(tasks, { kind: 'cpu' }, [], new Set(['exec', 'train']));
    assert.deepEqual(wide, { ok: false, message: 'stage train (device = "cuda"): this machine has no GPU (nvidia-smi -L lists none)' });
  });

  test('nvidia-smi is consulted only when a task could use a GPU', () => {
    assert.equal(needsGpuDetection([exec], { kind: 'auto' }), false);
    assert.equal(needsGpuDetection([exec, train], { kind: 'cpu' }), false);
    assert.equal(needsGpuDetection([train], { kind: 'auto' }), true);
    assert.equal(needsGpuDetection([exec], { kind: 'cuda' }), true);
    assert.equal(needsGpuDetection([withDevice(exec, 'cuda:0')], { kind: 'cpu' }), true);
  });
});

describe('the --device flag and placing a graph (shared by run and plan)', () => {
  test('--device VALUE: the request, or the message run and plan both print', () => {
    assert.deepEqual(readDeviceFlag('cuda:2'), { ok: true, device: { kind: 'cuda', index: 2 } });
    assert.deepEqual(readDeviceFlag('auto'), { ok: true, device: { kind: 'auto' } });
    assert.deepEqual(readDeviceFlag('gpu'), { ok: false, message: '--device gpu: expected cpu, cuda, cuda:N or auto' });
  });

  const graph = makeGraph([
    { id: 'train', kind: 'train', params: { steps: 1 } },
    { id: 'exec', kind: 'exec', params: { command: 'true' } },
  ]);
  const [gTrain, gExec] = graph.tasks as [Task, Task];

  test('on the CPU: nothing takes a GPU, the class is cpu, and no GPU is looked for', () => {
    const placed = placeGraph(graph, { kind: 'cpu' }, graph.tasks);
    assert.ok(placed.ok);
    assert.deepEqual(placed.graph.tasks.map((t) => t.resources.gpus), [0, 0]);
    assert.deepEqual(placed.gpus, []);
    assert.equal(placed.gpuDeviceClass, 'cpu');
    assert.equal(taskDevice(placed.graph.tasks[0]!, placed.gpuDeviceClass), 'cpu');
  });

  test('on GPUs: the native kind takes one, the graph and the selection are placed alike', () => {
    const placed = placeGraph(graph, { kind: 'cuda' }, [gTrain], [0, 1]);
    assert.ok(placed.ok);
    assert.deepEqual(placed.graph.tasks.map((t) => t.resources.gpus), [1, 0]);
    assert.deepEqual(placed.selected, [placed.graph.tasks[0]]);
    assert.equal(placed.placements.get('train')?.gpus, 1);
    assert.match(placed.gpuDeviceClass, /^cuda/);
    assert.equal(taskDevice(placed.graph.tasks[0]!, placed.gpuDeviceClass), placed.gpuDeviceClass);
    assert.equal(taskDevice(placed.graph.tasks[1]!, placed.gpuDeviceClass), 'cpu');
  });

  test('a request the machine cannot satisfy refuses the placement only for a task in scope', () => {
    assert.deepEqual(placeGraph(graph, { kind: 'cuda' }, [gTrain], []), { ok: false, message: '--device cuda: this machine has no GPU (nvidia-smi -L lists none)' });
    const pinned = { ...graph, tasks: [withDevice(gTrain, 'cuda:3'), gExec] };
    assert.equal(placeGraph(pinned, { kind: 'cpu' }, [gExec], [0]).ok, true);
    assert.equal(placeGraph(pinned, { kind: 'cpu' }, pinned.tasks, [0]).ok, false);
  });
});

describe('device class in the effective key', () => {
  const keyOf = async (task: Task, placement: Placement | string): Promise<string> => {
    assert.ok(typeof placement !== 'string', String(placement));
    const graph = { pipeline: 't', file: 't.cf', params: {}, tasks: [placedTask(task, placement)], defaults: [task.id] };
    const keys = await effectiveKeys(graph, { root: tempRoot(), gpuDeviceClass: 'cuda:sm90' });
    return keys.get(task.id)!.key;
  };

  test('a native kind is keyed apart on cpu and on cuda; an exec stage is not', async () => {
    const cpu = await keyOf(train, place(train, 'cpu', [0]));
    const cuda = await keyOf(train, place(train, 'cuda', [0]));
    assert.notEqual(cpu, cuda);
    assert.equal(await keyOf(train, place(train, 'auto', [])), cpu, 'auto on a machine without GPU is cpu');
    assert.equal(await keyOf(exec, place(exec, 'cpu', [0])), await keyOf(exec, place(exec, 'cuda', [0])));
  });
});

describe('scheduling', () => {
  test('a task pinned to one GPU waits for that GPU even when another is free', async () => {
    const tasks = makeGraph([
      { id: 'a', kind: 'exec', gpus: 1 },
      { id: 'b', kind: 'exec', gpus: 1 },
      { id: 'c', kind: 'exec', gpus: 1 },
    ]).tasks;
    const given: Record<string, readonly number[]> = {};
    await schedule(tasks, {
      cpus: 4,
      gpus: [0, 1],
      keepGoing: false,
      stopping: () => false,
      willRetry: () => false,
      skipped: () => assert.fail('nothing is skipped'),
      gpuChoice: (task) => (task.id === 'a' ? undefined : [1]),
      attempt: async (task, _attempt, gpuIds) => {
        given[task.id] = gpuIds;
        await new Promise((r) => setTimeout(r, 20));
        return 'done';
      },
    });
    assert.deepEqual(given, { a: [0], b: [1], c: [1] });
  });
});

describe('cfpipe run --device', () => {
  const PIPELINE = (device = ''): string => `pipeline "device-demo"

stage probe: exec {
  command = "echo backend=$CFPIPE_BACKEND gpus=$CUDA_VISIBLE_DEVICES > $CFPIPE_OUT_OUT"
  output out: file = "probe.txt"
  publish out to "out/probe.txt"
  ${device}
}
`;
  const cfpipe = (root: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' } });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const project = (pipeline: string): string => {
    const root = tempRoot();
    writeFileSync(join(root, 'p.cf'), pipeline);
    writeFileSync(join(root, 'package.json'), '{}');
    return root;
  };
  const gpus = detectGpus();

  test('--device cpu runs the task with no GPU and the CPU backend, reported as cpu', () => {
    const root = project(PIPELINE());
    const r = cfpipe(root, 'run', 'p.cf', '--device', 'cpu', '--json');
    assert.equal(r.code, 0, r.err);
    assert.equal(readFileSync(join(root, 'out/probe.txt'), 'utf8'), 'backend=cpu gpus=\n');
    const started = r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; device?: string }).find((e) => e.type === 'task-started');
    assert.equal(started?.device, 'cpu');
  });

  test('a malformed --device is a usage error', () => {
    const r = cfpipe(project(PIPELINE()), 'run', 'p.cf', '--device', 'gpu');
    assert.equal(r.code, 2);
    assert.match(r.err, /--device gpu: expected cpu, cuda, cuda:N or auto/);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });

  test(`--device cuda:N beyond this machine's ${gpus.length} GPU(s) is refused before anything runs`, () => {
    const root = project(PIPELINE());
    const r = cfpipe(root, 'run', 'p.cf', '--device', `cuda:${gpus.length + 6}`);
    assert.equal(r.code, 2);
    const has = gpus.length === 0 ? 'no GPU \\(nvidia-smi -L lists none\\)' : `${gpus.length} GPUs?`;
    assert.match(r.err, new RegExp(`--device cuda:${gpus.length + 6}: .*this machine has ${has}`));
    assert.equal(existsSync(join(root, 'out')), false);
  });

  test('--device cuda without a GPU is refused; so is a stage pinned to cuda', { skip: gpus.length > 0 ? 'this machine has a GPU' : false }, () => {
    const r = cfpipe(project(PIPELINE()), 'run', 'p.cf', '--device', 'cuda');
    assert.equal(r.code, 2);
    assert.match(r.err, /--device cuda: this machine has no GPU \(nvidia-smi -L lists none\)/);
    const pinned = cfpipe(project(PIPELINE('device = "cuda"')), 'run', 'p.cf', '--device', 'cpu');
    assert.equal(pinned.code, 2);
    assert.match(pinned.err, /stage probe \(device = "cuda"\): this machine has no GPU/);
  });

  test('a stage device that is not cpu, cuda, cuda:N or auto is a compile error', () => {
    const r = cfpipe(project(PIPELINE('device = "tpu"')), 'check', 'p.cf');
    assert.notEqual(r.code, 0);
    assert.match(r.err + r.out, /`device` must be "cpu", "cuda", "cuda:N" or "auto"/);
  });
});
