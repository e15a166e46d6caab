// argv → a command. Global flags (--help, --version), `help CMD`, `CMD --help`, and the one place
// that turns a real bug into "internal error" + stack (exit 70); user mistakes never show a stack.

import { readFileSync } from 'node:fs';
import { COMMANDS, findCommand } from './commands.js';
import { EXIT, UsageError, type CliIO } from './io.js';
import { suggest } from '../../grammar/suggest.js';

const USAGE = `cfpipe: run the Causal Forcing recipe as one declarative, cached, resumable pipeline

Usage: cfpipe <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(8)}  ${c.summary}`).join('\n')}

Run \`cfpipe help <command>\` or \`cfpipe <command> --help\` for a command's options.
Global options: --help, --version
Exit codes: 0 ok, 1 failure, 2 user error (bad pipeline or flag), 70 internal error.
`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`cfpipe: ${error.message}\n`);
      return EXIT.user;
    }
    const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
    io.stderr(`cfpipe: internal error (this is a bug in cfpipe, not in your pipeline; please report it)\n${stack}\n`);
    return EXIT.internal;
  }
}

async function dispatch(argv: readonly string[], io: CliIO): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    io.stdout(USAGE);
    return first === undefined ? EXIT.user : EXIT.ok;
  }
  if (first === '--version' || first === '-V') {
    io.stdout(`cfpipe ${version()}\n`);
    return EXIT.ok;
  }
  if (first === 'help') {
    const name = rest[0];
    if (name === undefined) {
      io.stdout(USAGE);
      return EXIT.ok;
    }
    const entry = commandOrThrow(name);
    io.stdout((await entry.load()).help);
    return EXIT.ok;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option \`${first}\` (the command comes first: \`cfpipe check FILE\`)`);
  const entry = commandOrThrow(first);
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(command.help);
    return EXIT.ok;
  }
  return command.run(rest, io);
}

function commandOrThrow(name: string): NonNullable<ReturnType<typeof findCommand>> {
  const entry = findCommand(name);
  if (entry) return entry;
  const near = suggest(name, COMMANDS.map((c) => c.name));
  throw new UsageError(`unknown command \`${name}\`${near ? ` (did you mean \`${near}\`?)` : ''}; run \`cfpipe --help\` for the list`);
}
