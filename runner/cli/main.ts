// The compiled entry point bin/cfpipe.js imports: run the CLI on this process's arguments.
import { runCli } from './cli.js';
import { processIO } from './io.js';

process.exitCode = await runCli(process.argv.slice(2), processIO());
