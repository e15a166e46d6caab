// The worker: one child process per task. Reads its job from stdin, loads the stage kind, runs
// it with a KindContext, and reports on fd 3 (protocol.ts). SIGINT/SIGTERM abort ctx.signal
// (checkpoint at the next step and stop); a second one exits at once. When the runner dies
// (we get re-parented) the worker stops immediately, so an orphan never races the next run.

import { writeSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { loadKind } from '../kinds/index.js';
import type { KindContext } from '../kinds/types.js';
import { CHANNEL_FD, EXIT_FAILED, EXIT_INTERRUPTED, type WorkerJob, type WorkerMessage } from './protocol.js';
import { describeError } from './errors.js';
import { runHardStopHooks } from './hard-stop.js';

function send(message: WorkerMessage): void {
  try {
    writeSync(CHANNEL_FD, JSON.stringify(message) + '\n');
  } catch {
    // The runner is gone: nothing is listening and nothing may be published. Stop now.
    stopGroupNow();
  }
}

/** Ends this worker and every command it started (they share its process group). */
function stopGroupNow(): never {
  runHardStopHooks();
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    // Not a group leader (started by hand): only this process to end.
  }
  process.exit(EXIT_INTERRUPTED);
}

async function main(): Promise<void> {
  const job = JSON.parse(await text(process.stdin)) as WorkerJob;
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (name: string): void => {
    signals += 1;
    if (signals === 1) {
      process.stdout.write(`cfpipe: ${name} received, stopping at the next checkpoint\n`);
      abort.abort(new DOMException(`interrupted by ${name}`, 'AbortError'));
    } else {
      stopGroupNow();
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stopGroupNow();
  }, 200).unref();

  send({ t: 'started', pid: process.pid });
  const lookup = await loadKind(job.task.kind);
  if (!lookup.ok) {
    send({ t: 'failed', message: lookup.message });
    process.exit(EXIT_FAILED);
  }
  let lastProgress = 0;
  const ctx: KindContext = {
    task: job.task,
    inputs: job.inputs,
    outputs: job.outputs,
    workDir: job.workDir,
    root: job.root,
    device: job.device,
    signal: abort.signal,
    progress(step, total, metrics) {
      // At most ~20 messages a second, but always the last step.
      const now = Date.now();
      if (now - lastProgress < 50 && step < total) return;
      lastProgress = now;
      send(metrics ? { t: 'progress', step, total, metrics } : { t: 'progress', step, total });
    },
    checkpoint(step, path) {
      send({ t: 'checkpoint', step, path });
    },
    log(line) {
      process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
    },
  };
  try {
    await lookup.kind.run(ctx);
  } catch (error) {
    if (abort.signal.aborted) {
      send({ t: 'interrupted' });
      process.exit(EXIT_INTERRUPTED);
    }
    const message = describeError(error);
    process.stderr.write(`${error instanceof Error && error.name !== 'KindError' ? (error.stack ?? message) : message}\n`);
    send({ t: 'failed', message });
    process.exit(EXIT_FAILED);
  }
  send({ t: 'finished' });
  process.exit(0);
}

await main();
