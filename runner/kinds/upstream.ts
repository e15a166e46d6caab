// `upstream`: runs one of the upstream Causal Forcing repo's scripts (train.py, the ODE
// generators, create_lmdb_iterative.py, inference.py) on its own terms, plus what upstream lacks:
//
//   stage ar_diffusion: upstream {
//     repo = upstream_repo                                   # the checkout; never written
//     script = "train.py"
//     args = ["--config_path", "configs/ar_diffusion_tf_framewise.yaml",
//             "--logdir", "logs/ar_diffusion_tf_framewise", "--disable-wandb"]
//     config_path = "configs/ar_diffusion_tf_framewise.yaml" # derived for this task:
//     config_set = { data_path: "{in.data}" }               #   keys pointing at the inputs
//     mounts = { "wan_models/Wan2.1-T2V-1.3B": "{in.wan}" } # what upstream hard-codes
//     data = clean_data.dataset                              # inputs: any assignment holding references
//     wan = wan_1_3b.model
//     launcher = "torchrun"                                  # or "python"
//     nnodes = 8  nproc_per_node = 8  rdzv_endpoint = "$MASTER_ADDR:29500"  rdzv_id = "5235"
//     stop_when = { checkpoint_dir: "logs/ar_diffusion_tf_framewise", step: 2000 }
//     output model: checkpoint                               # gets the checkpoint of that step
//   }
//
// The script runs in an overlay of the checkout (launch/upstream_overlay.ts), so its command line
// is the README's. With `stop_when`, the job is ended once checkpoint_model_{step:06d}/model.pt is
// complete, and that file is the stage's output: the next stage's `config_set = { generator_ckpt:
// "{in.init}" }` hands it on, no copying by hand (spec §6.1–§6.2). Upstream trainers cannot resume
// (checkpoints hold no optimizer state, spec §6.3), so an interrupted training starts over unless
// the wanted checkpoint was already complete. Other outputs are declared with a path the script
// writes under the run folder (`output latents: dir = "dataset/ODE6KCausal_framewise_latents"`).
//
// `$NAME` in rdzv_endpoint is read from the environment (upstream uses $MASTER_ADDR). cfpipe
// starts torchrun on this machine only; every node of a multi-node job must run the same line
// (the plan shows it), or use an exec stage with the Slurm launcher.

import { existsSync, linkSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cp, rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import type { Value } from '../graph.js';
import { expandArgv, expandString } from './exec.js';
import { upstreamArgv, commandLine } from './launch/upstream_command.js';
import { buildOverlay, deriveConfig, runRelative } from './launch/upstream_overlay.js';
import { checkpointName, endProcessTree, listCheckpoints, waitForCheckpoint } from './launch/stop_at_step.js';
import type { StopWhen } from './launch/stop_at_step.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const isMap = (v: Value | undefined): v is { readonly [k: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);
const envName = (name: string): string => name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
/** Written beside a checkpoint once cfpipe has verified it complete: a rerun may trust it. */
const COMPLETE_MARK = '.cfpipe-complete';

/** Reads `stop_when = { checkpoint_dir, step, settle_ms?, grace_s?, poll_ms? }`. */
export function readStopWhen(value: Value | undefined, run: string): StopWhen | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isMap(value)) throw new KindError('upstream: `stop_when` must be a map like { checkpoint_dir: "logs/x", step: 2000 }');
  const dir = value.checkpoint_dir;
  const step = value.step;
  if (typeof dir !== 'string') throw new KindError('upstream: `stop_when.checkpoint_dir` must be the trainer\'s log dir (its --logdir)');
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 1) throw new KindError('upstream: `stop_when.step` must be a positive integer');
  const num = (k: string, d: number): number => (typeof value[k] === 'number' && (value[k] as number) >= 0 ? (value[k] as number) : d);
  return { checkpointDir: join(run, runRelative(dir, 'stop_when.checkpoint_dir')), step, settleMs: num('settle_ms', 2000), graceS: num('grace_s', 30), pollMs: num('poll_ms', 500) };
}

/** `$NAME` / `${NAME}` in a launcher setting, from the environment; unset names are an error. */
function withEnv(text: string, env: Readonly<Record<string, string | undefined>>, what: string): string {
  return text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') throw new KindError(`upstream: \`${what}\` uses $${name}, which is not set in the environment`);
    return v;
  });
}

function stringMap(value: Value | undefined, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isMap(value)) throw new KindError(`upstream: \`${what}\` must be a map`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
}

async function place(from: string, to: string): Promise<void> {
  try {
    // A hard link keeps the log dir's copy, so a rerun after a crash right here still finds it.
    linkSync(from, to);
    return;
  } catch {
    // another filesystem, or a folder
  }
  if (statSync(from).isDirectory()) {
    try {
      await rename(from, to);
      return;
    } catch {
      // fall through to a copy
    }
  }
  await cp(from, to, { recursive: true });
}

export const kind: StageKind = {
  name: 'upstream',
  async run(ctx: KindContext): Promise<void> {
    const p = ctx.task.params;
    const run = join(ctx.workDir, 'run');
    const expand = (text: string): string => expandString(ctx, text.replaceAll('{run}', run));
    if (typeof p.repo !== 'string' || p.repo === '') throw new KindError('upstream: `repo` must be the path of the upstream checkout');
    const repo = resolve(ctx.root, expand(p.repo));
    const stop = readStopWhen(p.stop_when, run);

    // Outputs: the checkpoint output (with stop_when), and outputs written at declared paths.
    const declared = ctx.task.outputs;
    const checkpointOutput = stop ? declared.find((o) => o.path === undefined) : undefined;
    if (stop && checkpointOutput === undefined) throw new KindError('upstream: with `stop_when`, declare an output without a path (it receives the checkpoint), e.g. `output model: checkpoint`');
    const written = declared.filter((o) => o !== checkpointOutput);
    for (const o of written) if (o.path === undefined) throw new KindError(`upstream: output \`${o.name}\` needs the path the script writes it at, relative to the checkout's layout`);

    const mounts = new Map<string, string>();
    for (const [rel, target] of Object.entries(stringMap(p.mounts, 'mounts'))) mounts.set(runRelative(rel, 'mount'), resolve(ctx.root, expand(target)));
    const files = new Map<string, string>();
    if (typeof p.config_path === 'string') {
      const set: Record<string, Value> = {};
      if (p.config_set !== undefined && !isMap(p.config_set)) throw new KindError('upstream: `config_set` must be a map of upstream config keys');
      for (const [k, v] of Object.entries(isMap(p.config_set) ? p.config_set : {})) set[k] = typeof v === 'string' ? expand(v) : v;
      files.set(runRelative(p.config_path, 'config_path'), deriveConfig(repo, p.config_path, set));
    }
    const realDirs = stop ? [runRelative(p.stop_when && isMap(p.stop_when) ? String(p.stop_when.checkpoint_dir) : '', 'stop_when.checkpoint_dir')] : [];
    const reserved = written.map((o) => runRelative(o.path!, `output ${o.name}`));
    buildOverlay({ repo, run, mounts, files, realDirs, reserved });
    for (const [rel, content] of files) ctx.log(`derived ${rel}: ${content.split('\n')[0]!.replace(/^# /, '')}`);

    // A checkpoint verified complete by an earlier attempt is the result; anything else there is
    // from a training that cannot be continued.
    if (stop) {
      const done = listCheckpoints(stop.checkpointDir).find((c) => c.step >= stop.step && existsSync(join(dirname(c.path), COMPLETE_MARK)));
      if (done !== undefined) {
        ctx.log(`${checkpointName(done.step)}/model.pt is complete from an earlier attempt: publishing it`);
        await place(done.path, ctx.outputs[checkpointOutput!.name]!);
        return;
      }
      const stale = readdirSync(stop.checkpointDir).filter((n) => /^checkpoint_model_\d+$/.test(n));
      if (stale.length > 0) {
        ctx.log(`removing ${stale.length} checkpoint folder(s) of an interrupted attempt: upstream trainers save no optimizer state, so training starts again at step 0`);
        for (const n of stale) rmSync(join(stop.checkpointDir, n), { recursive: true, force: true });
      }
    }

    const env: Record<string, string> = { ...stringMap(p.env, 'env'), PYTHONUNBUFFERED: '1', CFPIPE_WORK_DIR: ctx.workDir, CFPIPE_ROOT: ctx.root, CFPIPE_RUN_DIR: run };
    for (const [name, paths] of Object.entries(ctx.inputs)) env[`CFPIPE_IN_${envName(name)}`] = paths.join(':');
    const params: { [k: string]: Value } = { ...p };
    if (typeof p.rdzv_endpoint === 'string') params.rdzv_endpoint = withEnv(p.rdzv_endpoint, { ...process.env, ...env }, 'rdzv_endpoint');
    const argv = expandArgv(ctx, upstreamArgv(params).map((a) => a.replaceAll('{run}', run)));
    ctx.log(`$ ${commandLine(argv)}   (in ${run})`);

    const child = execa(argv[0]!, argv.slice(1), { cwd: run, env, reject: false, buffer: false, stdin: 'ignore', all: true });
    let exited = false;
    const finished = child.then((r) => {
      exited = true;
      return r;
    });
    const pid = child.pid;
    const lines = (async () => {
      for await (const line of child.iterable({ from: 'all' })) ctx.log(String(line));
    })();
    // Stop the whole job on Ctrl-C / SIGTERM of the runner, not only the first process.
    const onAbort = (): void => {
      if (pid !== undefined && !exited) void endProcessTree(pid, stop?.graceS ?? 30, () => exited);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (stop) {
        const hit = await waitForCheckpoint(stop, pid, () => exited, ctx.signal, (step) => ctx.progress(Math.min(step, stop.step), stop.step));
        if (ctx.signal.aborted) {
          await finished;
          ctx.signal.throwIfAborted();
        }
        if (hit === undefined) {
          const r = await finished;
          await lines;
          const last = listCheckpoints(stop.checkpointDir).at(-1);
          throw new KindError(
            `the trainer ended (${r.signal ? `killed by ${r.signal}` : `exit code ${r.exitCode}`}) before ${checkpointName(stop.step)}/model.pt appeared in ${stop.checkpointDir}` +
              (last ? `; its last checkpoint is step ${last.step}` : '; it wrote no checkpoint'),
          );
        }
        ctx.log(`${checkpointName(hit.step)}/model.pt is complete (${hit.bytes} bytes): ending the job`);
        const ended = pid === undefined ? { killed: false } : await endProcessTree(pid, stop.graceS, () => exited);
        await finished;
        await lines;
        if (ended.killed) ctx.log(`the job did not stop within ${stop.graceS} s of SIGTERM and was killed`);
        const after = statSync(hit.path).size;
        if (after !== hit.bytes) throw new KindError(`the checkpoint changed from ${hit.bytes} to ${after} bytes while the job was being stopped, so it may be incomplete; not publishing ${hit.path}`);
        writeFileSync(join(dirname(hit.path), COMPLETE_MARK), `${hit.bytes}\n`);
        ctx.progress(stop.step, stop.step);
        await place(hit.path, ctx.outputs[checkpointOutput!.name]!);
      } else {
        const r = await finished;
        await lines;
        ctx.signal.throwIfAborted();
        if (r.failed) {
          if (r.signal) throw new KindError(`command was killed by ${r.signal}`);
          if (r.exitCode !== undefined) throw new KindError(`command exited with code ${r.exitCode}`);
          throw new KindError(`command could not start: ${r.shortMessage ?? r.message}`);
        }
      }
      for (const o of written) {
        const at = join(run, o.path!);
        if (!existsSync(at)) throw new KindError(`upstream: the script did not write output \`${o.name}\` at ${o.path} (in ${run})`);
        await place(at, ctx.outputs[o.name]!);
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      if (!exited && pid !== undefined) await endProcessTree(pid, 5, () => exited);
    }
  },
};
