// The run lock: at most one `cfpipe run` (or `gc`) per store. The lock is a record in the
// store's meta database, taken and released in LMDB write transactions, which LMDB serialises
// across processes — so two runners racing for a dead holder's lock cannot both win. The
// record names its holder (pid, host, start time); a holder that no longer runs (checked by
// pid + process start time + boot id) is taken over silently, never needing `--unlock`.

import { bootId, isAlive, processStart, thisHost } from './process-identity.js';
import type { LockRecord } from './records.js';
import type { Store } from './store.js';

export type LockAttempt =
  | { readonly ok: true; readonly takenOverFrom?: LockRecord }
  | { readonly ok: false; readonly holder: LockRecord };

function me(command: string): LockRecord {
  return { pid: process.pid, host: thisHost(), procStart: processStart(process.pid) ?? 'unknown', bootId: bootId(), since: Date.now(), command };
}

const isMine = (lock: LockRecord): boolean => lock.pid === process.pid && lock.host === thisHost() && lock.bootId === bootId();

/** Tries once to take the lock. */
export function tryLock(store: Store, command: string): LockAttempt {
  return store.env.transactionSync((): LockAttempt => {
    const held = store.meta.get('lock') as LockRecord | undefined;
    if (held !== undefined && !isMine(held) && isAlive(held)) return { ok: false, holder: held };
    store.meta.putSync('lock', me(command));
    return held !== undefined && !isMine(held) ? { ok: true, takenOverFrom: held } : { ok: true };
  });
}

/** Takes the lock, waiting (polling) while a live holder has it if `waitMs` > 0. */
export async function acquireLock(store: Store, command: string, waitMs: number, onWait?: (holder: LockRecord) => void): Promise<LockAttempt> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const attempt = tryLock(store, command);
    if (attempt.ok || Date.now() >= deadline) return attempt;
    if (!told) onWait?.(attempt.holder);
    told = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Releases the lock if this process holds it. */
export function releaseLock(store: Store): void {
  store.env.transactionSync(() => {
    const held = store.meta.get('lock') as LockRecord | undefined;
    if (held !== undefined && isMine(held)) store.meta.removeSync('lock');
  });
}

/** The current holder, if a live one exists. */
export function lockHolder(store: Store): LockRecord | undefined {
  const held = store.meta.get('lock') as LockRecord | undefined;
  return held !== undefined && isAlive(held) ? held : undefined;
}

/** "pid 123 on host h (`cfpipe run x.cf`), since 2026-…" */
export function describeHolder(lock: LockRecord): string {
  return `pid ${lock.pid} on ${lock.host} (\`${lock.command}\`), running since ${new Date(lock.since).toISOString()}`;
}
