// Running the real `cfpipe` on a machine without GPUs or on a simulated GPU machine (a fake
// nvidia-smi on PATH listing two H200s of compute capability 9.0: the probe the runner reads,
// not the product), in throwaway projects holding one pipeline. Shared by the CLI tests of
// `--device` (plan, status, explain).

import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after } from 'node:test';
import { cfpipeBin, fromRoot } from './paths.js';

export type Machine = 'no-gpu' | 'two-h200';

export interface GpuMachines {
  /** A fresh project (package.json, configs/default_config.yaml) with the pipeline as p.cf. */
  project(): string;
  /** `cfpipe ARGS` in `root` on `machine`. */
  cfpipe(root: string, machine: Machine, ...args: string[]): { code: number | null; out: string; err: string };
  /** The keys `cfpipe run p.cf --dry-run ARGS` announces on `machine`, by task id. */
  dryRunKeys(root: string, machine: Machine, ...args: string[]): Map<string, string>;
}

/** Projects for `pipeline` under a scratch folder removed after the tests of the calling file. */
export function gpuMachines(name: string, pipeline: string): GpuMachines {
  const scratch = mkdtempSync(join(tmpdir(), `cfpipe-${name}-`));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  const fakeBin = join(scratch, 'fake-gpu-bin');
  mkdirSync(fakeBin);
  const script = join(fakeBin, 'nvidia-smi');
  writeFileSync(
    script,
    `#!/bin/sh
case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-fake-0)"; echo "GPU 1: NVIDIA H200 (UUID: GPU-fake-1)" ;;
  *compute_cap*) echo "9.0" ;;
  *) exit 1 ;;
esac
`,
  );
  chmodSync(script, 0o755);

  /** The environment of a machine without GPUs, or of one whose nvidia-smi lists two H200s. */
  const machineEnv = (machine: Machine): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: '1', NO_COLOR: '1' };
    delete env['CUDA_VISIBLE_DEVICES'];
    // An empty CUDA_VISIBLE_DEVICES hides any real GPU from the runner's probe.
    if (machine === 'no-gpu') env['CUDA_VISIBLE_DEVICES'] = '';
    else env['PATH'] = `${fakeBin}${delimiter}${process.env['PATH'] ?? ''}`;
    return env;
  };

  const cfpipe: GpuMachines['cfpipe'] = (root, machine, ...args) => {
    const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: root, encoding: 'utf8', env: machineEnv(machine) });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  return {
    cfpipe,
    project() {
      const root = mkdtempSync(join(scratch, 'project-'));
      writeFileSync(join(root, 'package.json'), '{}\n');
      writeFileSync(join(root, 'p.cf'), pipeline);
      mkdirSync(join(root, 'configs'));
      copyFileSync(fromRoot('configs', 'default_config.yaml'), join(root, 'configs', 'default_config.yaml'));
      return root;
    },
    dryRunKeys(root, machine, ...args) {
      const r = cfpipe(root, machine, 'run', 'p.cf', '--dry-run', '--json', ...args);
      assert.equal(r.code, 0, r.err);
      const events = r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; tasks?: { id: string; key: string }[] });
      const started = events.find((e) => e.type === 'run-started');
      return new Map((started?.tasks ?? []).map((t) => [t.id, t.key]));
    },
  };
}
