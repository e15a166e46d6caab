// Renders the `torchrun` command line the upstream README types by hand
// (`torchrun --nnodes=8 --nproc_per_node=8 --rdzv_id=… --rdzv_backend=c10d --rdzv_endpoint=$MASTER_ADDR train.py …`).
// cfpipe never schedules ranks itself: torchrun's elastic launcher does.

import type { Value } from '../../graph.js';
import { KindError } from '../types.js';

export interface TorchrunLauncher {
  readonly nnodes: number;
  readonly nprocPerNode: number;
  /** `host:port` of the c10d rendezvous; absent for a single node (`--standalone`). */
  readonly rdzvEndpoint?: string;
  readonly rdzvId?: string;
  readonly rdzvBackend: string;
  /** Where `torchrun` is (default: found on PATH). */
  readonly program: string;
}

const get = (block: { readonly [k: string]: Value }, ...names: string[]): Value | undefined =>
  names.map((n) => block[n]).find((v) => v !== undefined);

export function readTorchrunLauncher(block: { readonly [k: string]: Value }): TorchrunLauncher {
  const nnodes = get(block, 'nnodes') ?? 1;
  const nproc = get(block, 'nproc_per_node') ?? 1;
  if (typeof nnodes !== 'number' || !Number.isInteger(nnodes) || nnodes < 1) throw new KindError('torchrun: `nnodes` must be a positive integer');
  if (typeof nproc !== 'number' || !Number.isInteger(nproc) || nproc < 1) throw new KindError('torchrun: `nproc_per_node` must be a positive integer');
  const endpoint = get(block, 'rdzv_endpoint', 'rendezvous');
  const rdzvId = get(block, 'rdzv_id');
  const backend = get(block, 'rdzv_backend') ?? 'c10d';
  const program = get(block, 'program') ?? 'torchrun';
  if (nnodes > 1 && typeof endpoint !== 'string') throw new KindError('torchrun: several nodes need a `rdzv_endpoint` ("host:port")');
  return {
    nnodes,
    nprocPerNode: nproc,
    ...(typeof endpoint === 'string' ? { rdzvEndpoint: endpoint } : {}),
    ...(rdzvId !== undefined && rdzvId !== null ? { rdzvId: String(rdzvId) } : {}),
    rdzvBackend: String(backend),
    program: String(program),
  };
}

/** The full argv: torchrun and its flags, then the stage's own command. */
export function renderTorchrun(launcher: TorchrunLauncher, command: readonly string[]): string[] {
  const argv = [launcher.program, `--nnodes=${launcher.nnodes}`, `--nproc_per_node=${launcher.nprocPerNode}`];
  if (launcher.rdzvEndpoint === undefined) argv.push('--standalone');
  else {
    if (launcher.rdzvId !== undefined) argv.push(`--rdzv_id=${launcher.rdzvId}`);
    argv.push(`--rdzv_backend=${launcher.rdzvBackend}`, `--rdzv_endpoint=${launcher.rdzvEndpoint}`);
  }
  return [...argv, ...command];
}
