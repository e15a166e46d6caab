// Work a task started outside its worker's process group (a Slurm job, say) is not ended by
// the runner's kill(-pid): the kind registers a synchronous hook here, and the worker runs every
// hook just before it stops hard (a second interrupt, or the runner gone). Hooks must be quick
// and must not throw.

const hooks = new Set<() => void>();

/** Registers `hook` for a hard stop; returns a function that unregisters it. */
export function atHardStop(hook: () => void): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/** Runs (and forgets) every registered hook; an error in one does not stop the others. */
export function runHardStopHooks(): void {
  for (const hook of [...hooks]) {
    hooks.delete(hook);
    try {
      hook();
    } catch {
      // Nothing useful to do while stopping.
    }
  }
}
