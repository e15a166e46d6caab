#!/usr/bin/env node
// Builds the native engine: `npm run build:native [-- --cuda | --no-cuda | --debug | --clean]`.
//
// cmake-js runs in Node-API mode: native/package.json carries `binary.napi_versions`, so the C
// headers come from the node-api-headers package and nothing is downloaded. The addon is then
// independent of the Node version that loads it (any Node with Node-API 8). npm hands its config to
// child processes as npm_config_* variables and cmake-js reads them (a user `nodedir=/usr` would
// point it at the system Node's headers, `cmake_*` keys would become -D flags), so the build runs
// with those variables removed.
//
// Output: native/build/Release/cfpipe_native.node, and cfpipe_cuda.node where nvcc exists (the
// loader in native/index.ts looks there, CUDA first), and
// the C++ test executables in native/build (ctest --test-dir native/build).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { delimiter, join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const nativeDir = join(root, 'native');
const outDir = join(nativeDir, 'build');
const args = process.argv.slice(2);
const known = new Set(['--cuda', '--no-cuda', '--debug', '--clean', '--verbose']);
for (const a of args) {
  if (!known.has(a)) fail(`unknown option ${a} (known: ${[...known].join(', ')})`);
}

function fail(message) {
  console.error(`build:native: ${message}`);
  process.exit(1);
}

/** The first executable named `name` on PATH, or undefined. */
function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

if (!existsSync(join(nativeDir, 'CMakeLists.txt'))) fail('native/CMakeLists.txt is missing');
const pkg = JSON.parse(readFileSync(join(nativeDir, 'package.json'), 'utf8'));
if (!Array.isArray(pkg?.binary?.napi_versions)) {
  // Without it cmake-js falls back to downloading full Node headers, which fails offline.
  fail('native/package.json must declare binary.napi_versions (Node-API mode)');
}

// Toolchain checks first, so a missing tool gives one clear line instead of a cmake-js stack.
const cmake = process.env.CMAKE ?? onPath('cmake');
if (!cmake) {
  fail('cmake not found on PATH. Install CMake >= 3.20 (Debian/Ubuntu: apt-get install cmake), then run `npm run build:native`.');
}
const cmakeVersion = spawnSync(cmake, ['--version'], { encoding: 'utf8' });
if (cmakeVersion.status !== 0) fail(`${cmake} --version failed: ${cmakeVersion.stderr || cmakeVersion.error}`);
const cxx = process.env.CXX ?? onPath('c++') ?? onPath('g++') ?? onPath('clang++');
if (!cxx) {
  fail('no C++17 compiler found (looked for $CXX, c++, g++, clang++). Install one (Debian/Ubuntu: apt-get install g++), then run `npm run build:native`.');
}
for (const header of ['node_modules/node-api-headers/include/node_api.h', 'node_modules/node-addon-api/napi.h']) {
  if (!existsSync(join(root, header))) fail(`${header} is missing: run \`npm ci\` first (or \`npm run setup\`)`);
}

// CUDA: on with --cuda, off with --no-cuda, otherwise on exactly when nvcc is found.
const nvcc = process.env.CUDACXX ?? onPath('nvcc') ?? (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : undefined);
let cuda = nvcc !== undefined;
if (args.includes('--cuda')) {
  if (!nvcc) fail('--cuda given but nvcc was not found (set CUDACXX or put nvcc on PATH)');
  cuda = true;
}
if (args.includes('--no-cuda')) cuda = false;

if (args.includes('--clean')) rmSync(outDir, { recursive: true, force: true });

const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
if (cuda && nvcc) env.CUDACXX = nvcc;

const config = args.includes('--debug') ? 'Debug' : 'Release';
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const cmakeJsArgs = [
  cmakeJs, 'build',
  '--directory', nativeDir,
  '--out', outDir,
  '--config', config,
  '--cmake-path', cmake,
  '--parallel', String(Math.max(1, availableParallelism())),
  `--CDCFPIPE_CUDA=${cuda ? 'ON' : 'OFF'}`,
  '--log-level', args.includes('--verbose') ? 'verbose' : 'info',
];
console.log(`build:native: ${config}, Node-API ${pkg.binary.napi_versions.join('/')}, compiler ${cxx}, CFPIPE_CUDA=${cuda ? `ON (nvcc: ${nvcc})` : `OFF (${nvcc ? '--no-cuda' : 'no nvcc found'})`}`);
const result = spawnSync(process.execPath, cmakeJsArgs, { stdio: 'inherit', env, cwd: root });
if (result.status !== 0) fail(`cmake-js failed (exit ${result.status ?? result.signal}); see the compiler output above`);

const addon = join(outDir, config, 'cfpipe_native.node');
if (existsSync(addon)) console.log(`build:native: built ${addon}`);
else console.log('build:native: core library and C++ tests built; no binding sources yet, so no addon');
// The CUDA addon (same binding, CUDA backend) where nvcc was found; the loader prefers it.
const cudaAddon = join(outDir, config, 'cfpipe_cuda.node');
if (cuda) {
  if (existsSync(cudaAddon)) console.log(`build:native: built ${cudaAddon} (CUDA backend; the loader prefers it)`);
  else fail(`CUDA was on but ${cudaAddon} was not built; see the CMake output above`);
} else if (existsSync(cudaAddon)) {
  // A CUDA addon left by an earlier build would still be preferred by the loader: remove it.
  rmSync(cudaAddon, { force: true });
  console.log(`build:native: removed the stale ${cudaAddon} (this build has no CUDA)`);
}
