// Paths tests need, independent of where the compiled test file sits (dist/test/...).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root (the folder holding package.json). */
export const repoRoot: string = fileURLToPath(new URL('../../../', import.meta.url));

/** A path under the repository root. */
export const fromRoot = (...parts: string[]): string => join(repoRoot, ...parts);

/** The cfpipe executable as a user runs it. */
export const cfpipeBin: string = fromRoot('bin', 'cfpipe.js');
