#!/usr/bin/env node
// Builds the native engine with cmake-js in Node-API mode (headers come from the node-api-headers
// package, so nothing is downloaded). Owned by the native engine; see native/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const native = join(root, 'native');
if (!existsSync(join(native, 'CMakeLists.txt'))) {
  console.log('native: no CMakeLists.txt yet, nothing to build');
  process.exit(0);
}
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const result = spawnSync(process.execPath, [cmakeJs, 'compile', '--directory', native, '--out', join(native, 'build')], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
