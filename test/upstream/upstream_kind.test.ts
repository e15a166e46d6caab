// The `upstream` stage kind through the real CLI and runner, with a small real Python program in
// place of upstream's train.py (test/upstream/trainer_repo: infinite loop, checkpoints written in
// place and held open, a child process like torchrun's ranks). Checks: each training stops at its
// step with a complete checkpoint, the whole process tree is ended, the checkpoint is handed to the
// next stage's derived config, the checkout is never written, and `--use` replaces a stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cfpipeBin, fromRoot } from '../util/paths.js';

const repo = fromRoot('test', 'upstream', 'trainer_repo');
const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0);
const skip = python === undefined ? 'no python3 with PyYAML on this machine' : false;

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Whether a process still runs (an exited one waiting to be reaped, state Z, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '');
  } catch {
    try {
      process.kill(pid, 0);
      return existsSync('/proc/self') ? false : true;
    } catch {
      return false;
    }
  }
}

function pipeline(pidsFile: string): string {
  return `pipeline "upstream-test"
param upstream_repo: path = "${repo}"

stage a: upstream {
  repo = upstream_repo
  script = "train.py"
  args = ["--config_path", "configs/stage_a.yaml", "--logdir", "logs/stage_a", "--disable-wandb"]
  launcher = "python"
  python = "${python}"
  config_path = "configs/stage_a.yaml"
  config_set = { data_path: "{root}/data/clean" }
  mounts = { "wan_models/Wan2.1-T2V-1.3B": "wan" }
  env = { TRAINER_PIDS_FILE: "${pidsFile}" }
  stop_when = { checkpoint_dir: "logs/stage_a", step: 4, settle_ms: 300, poll_ms: 50, grace_s: 5 }
  output model: checkpoint
  publish model to "checkpoints/a.pt"
}

stage b: upstream {
  repo = upstream_repo
  script = "train.py"
  args = ["--config_path", "configs/stage_b.yaml", "--logdir", "logs/stage_b", "--disable-wandb"]
  launcher = "python"
  python = "${python}"
  init = a.model
  config_path = "configs/stage_b.yaml"
  config_set = { generator_ckpt: "{in.init}" }
  mounts = { "wan_models/Wan2.1-T2V-1.3B": "wan" }
  env = { TRAINER_PIDS_FILE: "${pidsFile}" }
  stop_when = { checkpoint_dir: "logs/stage_b", step: 3, settle_ms: 300, poll_ms: 50, grace_s: 5 }
  output model: checkpoint
  publish model to "checkpoints/b.pt"
}

default b
`;
}

function project(): { root: string; file: string; pids: string } {
  const root = mkdtempSync(join(tmpdir(), 'cfpipe-upstream-'));
  writeFileSync(join(root, 'package.json'), '{}\n');
  mkdirSync(join(root, 'wan'));
  writeFileSync(join(root, 'wan', 'config.json'), '{"dim": 1536}');
  const pids = join(root, 'pids.txt');
  const file = join(root, 'upstream.cf');
  writeFileSync(file, pipeline(pids));
  return { root, file, pids };
}

const run = (root: string, ...args: string[]) =>
  spawnSync(process.execPath, [cfpipeBin, 'run', ...args, '--plain'], { cwd: root, encoding: 'utf8', timeout: 120_000 });

function pidsOf(file: string): number[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split(/\s+/).filter(Boolean).map(Number) : [];
}

test('trainers stop at their step with a complete checkpoint, the job tree ends, and the checkpoint feeds the next config', { skip }, () => {
  const { root, file, pids } = project();
  try {
    const r = run(root, file);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const a = readFileSync(join(root, 'checkpoints', 'a.pt'), 'utf8');
    const b = readFileSync(join(root, 'checkpoints', 'b.pt'), 'utf8');
    // Complete files: the trainer held each open past the settle time before its last line.
    assert.match(a, /\nEND\n$/);
    assert.match(b, /\nEND\n$/);
    const aBody = JSON.parse(a.split('\n')[0]!) as { step: number; init_digest: string | null; data_path: string; config_name: string; wan: string };
    const bBody = JSON.parse(b.split('\n')[0]!) as { step: number; init_digest: string | null; config_name: string };
    assert.equal(aBody.step, 4);
    assert.equal(aBody.init_digest, null);
    assert.equal(aBody.data_path, join(root, 'data', 'clean'), 'config_set reached the derived config');
    assert.equal(aBody.config_name, 'stage_a', 'the derived config keeps the stem upstream names runs by');
    assert.equal(aBody.wan, '{"dim": 1536}', 'the hard-coded wan_models path was mounted');
    assert.equal(bBody.step, 3);
    assert.equal(bBody.init_digest, sha(join(root, 'checkpoints', 'a.pt')), "b was initialised from a's checkpoint");
    // Every trainer and its child are gone.
    const all = pidsOf(pids);
    assert.equal(all.length, 4, 'two trainers, each with one child');
    for (const pid of all) assert.ok(!alive(pid), `process ${pid} still runs`);
    // The checkout was only read.
    assert.deepEqual(readdirSync(repo).sort(), ['configs', 'train.py']);
    // A second run has nothing to do.
    rmSync(pids, { force: true });
    const again = run(root, file);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(pidsOf(pids), [], 'nothing reran');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--use replaces a training stage with a given checkpoint (the README\'s "download our checkpoint")', { skip }, () => {
  const { root, file, pids } = project();
  try {
    const given = join(root, 'published_a.pt');
    writeFileSync(given, 'published weights\n');
    const r = run(root, file, '--use', `a.model=${given}`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const bBody = JSON.parse(readFileSync(join(root, 'checkpoints', 'b.pt'), 'utf8').split('\n')[0]!) as { init_digest: string };
    assert.equal(bBody.init_digest, sha(given));
    assert.equal(pidsOf(pids).length, 2, 'only b trained');
    assert.ok(!existsSync(join(root, 'checkpoints', 'a.pt')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a trainer that dies before its step fails the stage with the step it reached, no stack trace', { skip }, () => {
  const { root, file } = project();
  try {
    // Make stage a crash: its wan mount points at a folder without config.json.
    writeFileSync(file, readFileSync(file, 'utf8').replace('step: 4,', 'step: 400000,').replace('"wan_models/Wan2.1-T2V-1.3B": "wan" }\n  env', '"wan_models/Wan2.1-T2V-1.3B": "missing" }\n  env'));
    mkdirSync(join(root, 'missing'));
    const r = run(root, file);
    assert.notEqual(r.status, 0);
    const out = r.stdout + r.stderr;
    assert.match(out, /the trainer ended \(exit code 1\) before checkpoint_model_400000\/model\.pt appeared/);
    assert.ok(!/\n\s+at .*\.js:\d+/.test(out), out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('Ctrl-C of the runner ends the whole training job (trainer and its child), and the task is left to rerun', { skip }, async () => {
  const { root, file, pids } = project();
  try {
    writeFileSync(file, readFileSync(file, 'utf8').replace('step: 4,', 'step: 400000,'));
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [cfpipeBin, 'run', file, '--plain'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (pidsOf(pids).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const started = pidsOf(pids);
    assert.equal(started.length, 2, out);
    const code = await new Promise<number | null>((done) => {
      child.on('close', (c) => done(c));
      child.kill('SIGINT');
    });
    assert.notEqual(code, 0);
    const until = Date.now() + 10_000;
    while (started.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    for (const pid of started) assert.ok(!alive(pid), `process ${pid} still runs after the interrupt\n${out}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
