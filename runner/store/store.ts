// The state store: one LMDB environment under `.cfpipe/state` with named databases
//   tasks   effective cache key → TaskRecord
//   latest  task id → { lastSuccess, lastAttempt } keys
//   runs    run id → RunRecord (history)
//   memo    "dev:ino" → { size, mtimeNs, digest } (never re-hash an unchanged file)
//   meta    'schema' → schema version, 'lock' → LockRecord
// Reads are synchronous (one process-wide read snapshot); writes are batched by lmdb and
// committed asynchronously, except where ordering matters (the lock, the success record).

import { existsSync, mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { networkFilesystemAt } from './filesystem.js';
import { storeLayout, type StoreLayout } from './layout.js';
import type { LockRecord, MemoRecord, RunRecord, TaskPointer, TaskRecord } from './records.js';

/** Bump when a record shape changes incompatibly; add a step to MIGRATIONS when it can be upgraded. */
export const SCHEMA_VERSION = 1;

/** Upgrades from version N to N+1, run inside one write transaction. */
const MIGRATIONS: Readonly<Record<number, (store: Store) => void>> = {};

/** A problem opening the store that the user must act on (shown as a message, not a trace). */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

export interface Store {
  readonly layout: StoreLayout;
  readonly env: RootDatabase;
  readonly tasks: Database<TaskRecord, string>;
  readonly latest: Database<TaskPointer, string>;
  readonly runs: Database<RunRecord, string>;
  readonly memo: Database<MemoRecord, string>;
  readonly meta: Database<unknown, string>;
}

const openStores = new Map<string, Store>();

export interface OpenOptions {
  /** Open only if `.cfpipe/state` exists (plan, status); otherwise return undefined. */
  readonly existingOnly?: boolean;
}

/**
 * Opens (creating if needed) the store of project `root`. LMDB forbids opening one environment
 * twice in a process, so handles are shared per path.
 */
export function openStore(root: string, options: OpenOptions = {}): Store | undefined {
  const layout = storeLayout(root);
  const cached = openStores.get(layout.state);
  if (cached) return cached;
  if (!existsSync(layout.state)) {
    if (options.existingOnly) return undefined;
    mkdirSync(layout.dir, { recursive: true });
  }
  const network = networkFilesystemAt(existsSync(layout.state) ? layout.state : layout.dir);
  if (network !== undefined) {
    throw new StoreError(
      `the cfpipe state store ${layout.state} is on a network filesystem (${network}); LMDB is only safe on a local disk. ` +
        `Run cfpipe from a project folder on local disk (e.g. node-local scratch).`,
    );
  }
  const env = open({ path: layout.state, maxDbs: 8, compression: false });
  const store: Store = {
    layout,
    env,
    tasks: env.openDB<TaskRecord, string>({ name: 'tasks' }),
    latest: env.openDB<TaskPointer, string>({ name: 'latest' }),
    runs: env.openDB<RunRecord, string>({ name: 'runs' }),
    memo: env.openDB<MemoRecord, string>({ name: 'memo' }),
    meta: env.openDB<unknown, string>({ name: 'meta' }),
  };
  checkSchema(store);
  openStores.set(layout.state, store);
  return store;
}

function checkSchema(store: Store): void {
  const found = store.meta.get('schema');
  if (found === undefined) {
    store.env.transactionSync(() => {
      if (store.meta.get('schema') === undefined) store.meta.putSync('schema', SCHEMA_VERSION);
    });
    return;
  }
  if (typeof found !== 'number') throw new StoreError(`the state store ${store.layout.state} has an unreadable schema version; remove it to start over`);
  if (found > SCHEMA_VERSION) {
    throw new StoreError(
      `the state store ${store.layout.state} was written by a newer cfpipe (schema ${found}; this one knows ${SCHEMA_VERSION}). Upgrade cfpipe.`,
    );
  }
  if (found < SCHEMA_VERSION) {
    for (let v = found; v < SCHEMA_VERSION; v++) {
      if (MIGRATIONS[v] === undefined) {
        throw new StoreError(
          `the state store ${store.layout.state} has schema ${found}, which this cfpipe (schema ${SCHEMA_VERSION}) cannot migrate. ` +
            `Remove ${store.layout.state} to start over (artifacts and checkpoints under .cfpipe/ are kept but will be recomputed).`,
        );
      }
    }
    store.env.transactionSync(() => {
      for (let v = found; v < SCHEMA_VERSION; v++) MIGRATIONS[v]!(store);
      store.meta.putSync('schema', SCHEMA_VERSION);
    });
  }
}

/** Closes a store opened by openStore (tests and short commands). */
export async function closeStore(store: Store): Promise<void> {
  openStores.delete(store.layout.state);
  await store.env.close();
}

export type { LockRecord };
