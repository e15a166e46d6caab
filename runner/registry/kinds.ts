// The stage kinds a pipeline can use, as the compiler checks them. Their implementations are
// runner task kinds (one module each); this table is the contract between the two.
//
// Step counts: upstream trainers loop forever. A `train` stage's `steps` param is the number of
// optimizer steps; the compiler writes it into the resolved config as `max_steps`, the one place
// a trainer reads it. A YAML may set `max_steps` itself; the stage's `steps` wins.

import type { InputSpec, OutputSpec, ParamSpec, StageKindSpec, ValueType } from './types.js';
import type { ArtifactType, Value } from '../graph.js';

const input = (types: ArtifactType | ArtifactType[], required: boolean, doc: string, many = false): InputSpec => ({
  types: Array.isArray(types) ? types : [types],
  required,
  many,
  doc,
});
const output = (type: ArtifactType, doc: string): OutputSpec => ({ type, doc });
const param = (type: ValueType, doc: string, dflt?: Value, semantic = true): ParamSpec =>
  dflt === undefined ? { type, required: false, semantic, doc } : { type, required: false, default: dflt, semantic, doc };
const required = (type: ValueType, doc: string): ParamSpec => ({ type, required: true, semantic: true, doc });

const int: ValueType = { kind: 'int' };
const num: ValueType = { kind: 'number' };
const str: ValueType = { kind: 'string' };
const bool: ValueType = { kind: 'bool' };

export const STAGE_KINDS: { readonly [name: string]: StageKindSpec } = {
  synth: {
    name: 'synth',
    doc: 'generate the built-in video domain: clips of coloured shapes in motion, prompts, held-out clips',
    inputs: {},
    outputs: {
      latents: output('dataset', 'training clips as latents (LMDB, upstream layout)'),
      heldout: output('dataset', 'held-out clips for evaluation (LMDB)'),
      prompts: output('file', 'prompts, one per line'),
    },
    params: {
      clips: param(int, 'training clips', 256),
      heldout_clips: param(int, 'held-out clips', 64),
      seed: param(int, 'generator seed', 0),
      shapes: param({ kind: 'list', items: str }, 'shapes to draw', ['square', 'disc', 'cross', 'triangle']),
      colors: param({ kind: 'list', items: str }, 'colours to draw', ['red', 'green', 'blue', 'yellow']),
    },
    config: { required: false, consumer: 'synth' },
  },
  fetch: {
    name: 'fetch',
    doc: 'bring an artifact from a hub, a URL or a local path (hf://, http(s)://, file:///abs or file:relative/to/project), resumable and verified',
    inputs: {},
    outputs: {},
    declaredOutputs: { min: 1, max: 1 },
    params: {
      // runner/kinds/fetch.ts reads `source` / `sources` (and the rest below).
      source: param(str, 'where the artifact comes from: hf://owner/repo[@rev][/path], hf://datasets/owner/repo[/path], an https:// URL, or a local file or folder: file:///absolute/path, file:path/relative/to/the/project'),
      sources: param({ kind: 'list' }, 'several sources: strings, or maps { source, sha256, size, into }'),
      url: param(str, 'where the artifact comes from (older spelling of `source`)'),
      sha256: param(str, 'expected digest of the fetched bytes'),
      size: param(int, 'expected size in bytes (one source)'),
      concurrency: param(int, 'files downloaded in parallel', 4, false),
      stall_timeout: param(int, 'seconds without a byte before the transfer is resumed', 60, false),
    },
  },
  merge: {
    name: 'merge',
    doc: 'merge LMDB shards (upstream merge_lmdb / merge_and_get_clean) without deleting the inputs',
    inputs: { parts: input('dataset', true, 'the shards, in order', true) },
    outputs: { dataset: output('dataset', 'the merged LMDB') },
    params: {
      // runner/kinds/merge.ts: `full` is upstream's merge_lmdb.py (`trajectories` says the same).
      mode: param({ kind: 'string', oneOf: ['full', 'clean', 'trajectories'] }, 'keep whole rows (full, merge_lmdb.py), or only the clean last entry (clean, merge_and_get_clean.py)', 'full'),
      pattern: param(str, 'shard folder names to take inside a folder of shards, e.g. "ODE6KCausal_framewise_*"'),
      lmdb_format: param(int, 'LMDB data format written: 1 (LMDB 0.9, Python lmdb: upstream reads it), 2 (lmdb-js), 0 = the shards\' format', 0),
      batch_rows: param(int, 'rows per write transaction', 512, false),
      batch_mb: param(int, 'also commit once this many MB are pending', 64, false),
    },
  },
  train: {
    name: 'train',
    doc: 'train a model with one of the upstream trainers (config key `trainer`)',
    inputs: {
      data: input(['dataset', 'file'], true, 'training data: latents, ODE pairs, or prompts for DMD'),
      init: input('checkpoint', false, 'initial weights (upstream generator_ckpt)'),
      teacher: input('checkpoint', false, 'frozen teacher (consistency distillation)'),
      real_score: input('checkpoint', false, 'frozen real score (DMD)'),
      fake_score: input('checkpoint', false, 'initial critic weights (DMD)'),
    },
    outputs: { model: output('checkpoint', 'the trained weights (safetensors, generator / generator_ema)') },
    params: {
      trainer: param({ kind: 'string', oneOf: ['diffusion', 'ode', 'score_distillation', 'consistency_distillation'] }, 'must agree with the config\'s `trainer` when both are given'),
      steps: required(int, 'optimizer steps (written to the config as max_steps)'),
      checkpoint_every: param(int, 'steps between resumable checkpoints', 100, false),
      use_ema: param(bool, 'fail unless the EMA ran, so the model holds generator_ema beside generator (an infer stage reads it with its own use_ema; init, teacher and real_score inputs read generator)', false),
    },
    config: { required: true },
    trainerInputs: {
      diffusion: { required: { data: ['dataset'] }, optional: { init: ['checkpoint'] } },
      ode: { required: { data: ['dataset'], init: ['checkpoint'] }, optional: {} },
      consistency_distillation: { required: { data: ['dataset'], init: ['checkpoint'] }, optional: { teacher: ['checkpoint'] } },
      score_distillation: {
        required: { data: ['file'], init: ['checkpoint'], real_score: ['checkpoint'] },
        optional: { fake_score: ['checkpoint'] },
      },
    },
  },
  ode_pairs: {
    name: 'ode_pairs',
    doc: 'integrate the AR teacher\'s causal ODE (teacher forcing on ground truth) and keep the 6 snapshots',
    inputs: {
      teacher: input('checkpoint', true, 'the AR-diffusion teacher'),
      data: input('dataset', true, 'clean latents to condition on'),
    },
    outputs: { trajectories: output('trajectories', 'rows [6, F, C, H, W] with their prompts') },
    params: {
      shard: param(int, 'which shard of the rows this task handles', 0),
      shards: param(int, 'how many shards the rows are split into', 1),
      steps: param(int, 'Euler steps of the ODE', 48),
      guidance_scale: param(num, 'CFG scale (standard form)', 6.0),
      mode: param({ kind: 'string', oneOf: ['full', 'blockwise_kv'] }, 'full teacher-forcing passes, or block by block with a KV cache', 'blockwise_kv'),
      seed: param(int, 'noise seed', 0),
      unique_prompts: param(bool, 'integrate only the first row of each prompt (lmdb_build drops the others)', false),
    },
    config: { required: false, consumer: 'ode_pairs' },
  },
  lmdb_build: {
    name: 'lmdb_build',
    doc: 'write ODE trajectories into one LMDB (upstream create_lmdb_iterative), in input order',
    inputs: { parts: input('trajectories', true, 'trajectory shards, in order', true) },
    outputs: { dataset: output('dataset', 'the ODE-pair LMDB') },
    params: { dedupe_prompts: param(bool, 'drop rows whose prompt was already seen (upstream does)', true) },
  },
  infer: {
    name: 'infer',
    doc: 'sample videos from a checkpoint: few-step streaming with a KV cache, or many-step for a teacher',
    inputs: {
      model: input('checkpoint', true, 'the weights to sample from'),
      prompts: input('file', true, 'prompts, one per line'),
    },
    outputs: { videos: output('videos', 'one video per prompt (GIF, and mp4 where ffmpeg exists)') },
    params: {
      use_ema: param(bool, 'read generator_ema instead of generator', false),
      seed: param(int, 'sampling seed', 0),
      samples: param(int, 'how many prompts to sample (0: all)', 0),
      num_output_frames: param(int, 'latent frames to generate (0: the model\'s frames)', 0),
    },
    config: { required: true, consumer: 'inference' },
  },
  eval: {
    name: 'eval',
    doc: 'measure prompt adherence, temporal consistency, dynamic degree and a Fréchet-style distance',
    inputs: {
      videos: input('videos', true, 'the generated videos'),
      reference: input('dataset', true, 'held-out real clips'),
    },
    outputs: { metrics: output('metrics', 'metrics as JSON') },
    params: {
      label: param(str, 'name shown in reports'),
    },
  },
  exec: {
    name: 'exec',
    // Inputs and outputs reach the command as paths in the environment: CFPIPE_IN_<NAME> for each
    // input (several sources joined by the path delimiter) and CFPIPE_OUT_<NAME> for each declared
    // output, upper-cased. Any assignment whose value holds references or paths is an input.
    doc: 'run any command with declared inputs and outputs (the upstream repo via torchrun, scripts...)',
    inputs: {},
    outputs: {},
    declaredOutputs: { min: 0, max: Number.MAX_SAFE_INTEGER },
    openInputs: true,
    params: {
      command: required({ kind: 'any' }, 'the command: a list of arguments, or a string run by the shell'),
      env: param({ kind: 'map' }, 'extra environment variables'),
      cwd: param(str, 'working directory (default: the task\'s work dir)'),
      launcher: param({ kind: 'string', oneOf: ['local', 'torchrun', 'slurm'] }, 'how the command is started', 'local'),
      nproc_per_node: param(int, 'processes per node (torchrun)', 1),
      nnodes: param(int, 'nodes (torchrun, slurm)', 1),
      rdzv_endpoint: param(str, 'host:port of the c10d rendezvous (torchrun, several nodes)'),
      rdzv_id: param(str, 'rendezvous id (torchrun)'),
      slurm: param({ kind: 'map' }, 'sbatch settings: partition, time, gpus, cpus_per_task, mem, account, qos, ... (launcher slurm)'),
    },
  },
  upstream: {
    name: 'upstream',
    // runner/kinds/upstream.ts. The script runs in an overlay of the checkout (hard-coded paths
    // replaced by `mounts` and a derived config), so its command line is the upstream README's.
    // Inputs: any assignment holding references, reachable as {in.NAME} in args, config_set and mounts.
    doc: 'run an upstream Causal Forcing script (train.py, ODE generation, LMDB build, inference) through torchrun or python; trainers stop at a step and hand their checkpoint on',
    inputs: {},
    outputs: {},
    declaredOutputs: { min: 1, max: Number.MAX_SAFE_INTEGER },
    openInputs: true,
    params: {
      repo: required(str, 'the upstream checkout (e.g. "../Causal-Forcing"); read, never written'),
      script: required(str, 'the script, relative to the checkout: train.py, get_causal_ode_data_framewise.py, utils/create_lmdb_iterative.py, inference.py'),
      args: param({ kind: 'list' }, 'its arguments as the README gives them; placeholders {in.NAME}, {out.NAME}, {work}, {run}', []),
      config_path: param(str, 'the upstream YAML (relative to the checkout) to derive for this task, at the same relative path'),
      config_set: param({ kind: 'map' }, 'config keys to set in the derived YAML, e.g. { generator_ckpt: "{in.init}", data_path: "{in.data}" }'),
      mounts: param({ kind: 'map' }, 'paths upstream hard-codes (relative to the checkout) → inputs, e.g. { "wan_models/Wan2.1-T2V-1.3B": "{in.wan}" }'),
      stop_when: param({ kind: 'map', keys: { checkpoint_dir: str, step: int, settle_ms: int, grace_s: int, poll_ms: int } }, 'end the job once <checkpoint_dir>/checkpoint_model_{step:06d}/model.pt is complete, and publish it'),
      launcher: param({ kind: 'string', oneOf: ['torchrun', 'python'] }, 'how the script is started', 'torchrun'),
      nnodes: param(int, 'nodes (torchrun)', 1),
      nproc_per_node: param(int, 'processes per node (torchrun)', 1),
      rdzv_endpoint: param(str, 'host:port of the c10d rendezvous; $NAME is read from the environment (torchrun, several nodes)'),
      rdzv_id: param(str, 'rendezvous id (torchrun)'),
      rdzv_backend: param(str, 'rendezvous backend (torchrun)', 'c10d'),
      torchrun: param(str, 'the torchrun program', 'torchrun'),
      python: param(str, 'the python program (launcher python)', 'python'),
      env: param({ kind: 'map' }, 'extra environment variables'),
    },
  },
  steps: {
    name: 'steps',
    // The runner's own resumable test kind (runner/kinds/steps.ts): a real step-wise computation
    // whose result depends on every step, checkpointed atomically with a checksum.
    doc: 'a deterministic step-wise computation with checkpoints (tests resume and crash safety)',
    inputs: {},
    outputs: { out: output('file', 'the result: a JSON header line, then output_bytes of derived bytes') },
    openInputs: true,
    params: {
      n: param(int, 'steps to compute', 10),
      checkpoint_every: param(int, 'steps between checkpoints', 1, false),
      work: param(int, 'logistic-map iterations per step (step cost)', 1000),
      width: param(int, 'size of the state vector', 64),
      seed: param(int, 'seed of the initial state', 0),
      output_bytes: param(int, 'extra bytes written after the header', 0),
      hang_on_exit: param(bool, 'make the worker hang in its own shutdown after finishing (tests the runner ending it)', false, false),
    },
  },
  report: {
    name: 'report',
    doc: 'collect metrics (and videos) into one comparison page',
    inputs: {
      metrics: input('metrics', true, 'metrics to compare, in order', true),
      videos: input('videos', false, 'videos to show beside them', true),
    },
    outputs: { summary: output('file', 'the report (markdown)') },
    params: { title: param(str, 'heading of the report', 'cfpipe report') },
  },
};

/** Properties every stage may set, whatever its kind. */
export const RESOURCE_PROPERTIES: { readonly [name: string]: ParamSpec } = {
  cpus: param(int, 'CPU cores the task needs', 1, false),
  gpus: param(int, 'GPUs the task needs', 0, false),
  memory: param({ kind: 'any' }, 'memory the task needs: bytes, or a string like "8GiB"', 0, false),
  retries: param(int, 'times a failed task is retried', 0, false),
  device: param(str, 'where the task runs: "cpu", "cuda", "cuda:N" or "auto" (default: the run\'s --device)', undefined, false),
};

/** Properties of kinds that read a YAML config. */
export const CONFIG_PROPERTIES = ['config', 'overrides'] as const;
