// Where a command writes. The real CLI passes the process streams; tests pass collectors and
// run commands in-process through exactly the code the executable runs.

export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Colour in diagnostics (a terminal that wants it). */
  readonly color: boolean;
}

export const processIO = (): CliIO => ({
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  color: process.stderr.isTTY === true && !process.env['NO_COLOR'] && process.env['TERM'] !== 'dumb',
});

/** A user mistake on the command line: printed as one message, exit code 2, no stack. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT = { ok: 0, failure: 1, user: 2, internal: 70 } as const;
