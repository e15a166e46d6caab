// Runs one task through the real worker process (dist/runner/exec/worker.js): the job on stdin,
// messages back on fd 3, exactly as the runner does. Used by the fetch and merge kind tests.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { ArtifactType, Task, Value } from '../../runner/graph.js';
import type { WorkerJob, WorkerMessage } from '../../runner/exec/protocol.js';
import { fromRoot, repoRoot } from '../util/paths.js';

export function makeTask(kind: string, params: { readonly [k: string]: Value }, outputs: { name: string; type: ArtifactType }[], inputs: { name: string; type: ArtifactType }[] = []): Task {
  const pos = { line: 1, column: 1, offset: 0 };
  return {
    id: `${kind}_stage`,
    stage: `${kind}_stage`,
    kind,
    params,
    inputs: inputs.map((i) => ({ name: i.name, type: i.type, sources: [], fanIn: false })),
    outputs,
    deps: [],
    resources: { cpus: 1, gpus: 0, memory: 0 },
    retries: 0,
    key: '0'.repeat(64),
    keyParts: {},
    range: { file: 'test.cf', start: pos, end: pos },
  };
}

export interface WorkerRun {
  readonly code: number | null;
  readonly messages: WorkerMessage[];
  readonly stdout: string;
  readonly stderr: string;
}

export function runWorker(job: WorkerJob, env: NodeJS.ProcessEnv = {}): Promise<WorkerRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fromRoot('dist', 'runner', 'exec', 'worker.js')], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    const messages: WorkerMessage[] = [];
    let stdout = '';
    let stderr = '';
    p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: p.stdio[3] as Readable }).on('line', (l) => messages.push(JSON.parse(l) as WorkerMessage));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, messages, stdout, stderr }));
    p.stdin?.end(JSON.stringify(job));
  });
}
