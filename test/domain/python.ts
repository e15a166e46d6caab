// A Python interpreter with the `lmdb` and `numpy` modules, if this machine has one: used to
// check that our files open with the same library upstream's tools use.
import { spawnSync } from 'node:child_process';

export function findPythonWithLmdb(): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(candidate, ['-c', 'import lmdb, numpy'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

export function runPython(python: string, script: string, args: readonly string[]): string {
  const result = spawnSync(python, ['-c', script, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}
