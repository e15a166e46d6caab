// The compiled entry point bin/cfpipe.js imports: run the CLI on this process's arguments.
// V8's on-disk compile cache (Node >= 22.1) is switched on first, so every module loaded after
// it (the parser generator, YAML, the compiler) skips most parsing and compiling on later runs.

import * as nodeModule from 'node:module';

(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { runCli } = await import('./cli.js');
const { processIO } = await import('./io.js');

process.exitCode = await runCli(process.argv.slice(2), processIO());
