// Prompt files as upstream's TextDataset reads them: UTF-8, one prompt per line, right-stripped.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export function readPrompts(path: string): string[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop(); // the newline that ends the last line
  return lines.map((l) => l.trimEnd());
}

/** Writes prompts one per line, atomically (temporary name, then rename). */
export function writePrompts(path: string, prompts: readonly string[]): void {
  for (const p of prompts) if (p.includes('\n')) throw new RangeError(`a prompt cannot contain a newline: ${JSON.stringify(p)}`);
  writeFileSync(`${path}.tmp-${process.pid}`, prompts.map((p) => `${p}\n`).join(''));
  renameSync(`${path}.tmp-${process.pid}`, path);
}
