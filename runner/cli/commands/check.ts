// `cfpipe check FILE...`: compile each pipeline and report every problem; nothing runs.

import { hasErrors, type Diagnostic } from '../../../grammar/diagnostic.js';
import { compilePipeline } from '../../compile/index.js';
import { count, keyValues, oneOf, parseCommand, PIPELINE_OPTIONS, PIPELINE_OPTIONS_HELP } from '../args.js';
import { DIAGNOSTIC_FORMATS, printDiagnostics, summary } from '../diagnostics-output.js';
import { EXIT, UsageError, type CliIO } from '../io.js';

export const help = `Usage: cfpipe check FILE... [options]

Check pipelines without running anything: syntax, names (stages, outputs, params, kinds, config
keys, with "did you mean"), cycles, input types, fan-out indices, missing files and configs,
config values of the wrong type, GPU requests. Warnings do not fail the check.

Options:
  --format text|json|github
                        how to print diagnostics (default text, on stderr; json and github on stdout)
${PIPELINE_OPTIONS_HELP}

Exit codes: 0 no errors, 2 errors found (or a bad flag).
`;

export async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommand('check', args, { ...PIPELINE_OPTIONS, format: { type: 'string' } });
  if (positionals.length === 0) throw new UsageError('check: which pipeline? `cfpipe check FILE`');
  const format = oneOf('check', 'format', values.format, DIAGNOSTIC_FORMATS, 'text');
  const options = {
    set: keyValues('check', 'set', values.set),
    paramFiles: values.params ?? [],
    use: keyValues('check', 'use', values.use),
    ...(values.gpus !== undefined ? { gpusAvailable: count('check', 'gpus', values.gpus)! } : {}),
    ...(values.root !== undefined ? { root: values.root } : {}),
  };

  const all: Diagnostic[] = [];
  const sources = new Map<string, string>();
  const lines: string[] = [];
  for (const file of positionals) {
    const result = compilePipeline(file, options);
    all.push(...result.diagnostics);
    for (const [name, text] of result.sources) sources.set(name, text);
    if (result.graph) {
      const tasks = result.graph.tasks.length;
      const extra = summary(result.diagnostics);
      lines.push(`ok ${file}: ${tasks} task${tasks === 1 ? '' : 's'}${extra ? `, ${extra}` : ''}\n`);
    } else {
      lines.push(`failed ${file}: ${summary(result.diagnostics)}\n`);
    }
  }
  printDiagnostics(all, sources, format, io);
  if (format === 'text') for (const line of lines) io.stderr(line);
  return hasErrors(all) ? EXIT.user : EXIT.ok;
}
