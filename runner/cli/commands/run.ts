// `cfpipe run FILE [TARGET...]`: compile, then run every task that is not fresh (resuming
// from checkpoints), with the listr2 interface on a terminal, plain lines otherwise, or JSON
// events with --json.

import type { EventSink } from '../../events.js';
import { exitCodeOf, runPipeline } from '../../exec/run-pipeline.js';
import { jsonSink } from '../../ui/json.js';
import { plainSink } from '../../ui/plain.js';
import { DEVICE_OPTION, readDeviceFlag } from '../device-option.js';
import type { CliIO } from '../io.js';
import { errorLine, GRAPH_OPTIONS, GRAPH_OPTIONS_HELP, loadGraph, parseCommandLine, recordGraphOptions } from './runner-common.js';

export const summary = 'run a pipeline: every task not fresh, resuming from checkpoints';

export const help = `usage: cfpipe run FILE [TARGET...] [options]

${GRAPH_OPTIONS_HELP}
  --only STAGE         run only this stage (its inputs must already be built)
  --from STAGE         rerun this stage and everything downstream of it
  --force STAGE        rerun this stage even if it is fresh
  -j, --jobs N         CPU budget (default: the number of cores)
  --device D           cpu, cuda, cuda:N or auto (default): where tasks run unless their
                       stage sets \`device\`; cuda needs a GPU that nvidia-smi -L lists
  --keep-going         after a failure, keep running tasks that do not depend on it
  --dry-run            show what would run, run nothing
  --wait               if another cfpipe holds the store, wait for it instead of exiting
  --json               one JSON event per line on stdout
  --plain              plain line output even on a terminal
`;

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    {
      ...GRAPH_OPTIONS,
      only: { type: 'string', multiple: true, default: [] },
      from: { type: 'string', multiple: true, default: [] },
      force: { type: 'string', multiple: true, default: [] },
      jobs: { type: 'string', short: 'j' },
      device: DEVICE_OPTION,
      'keep-going': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      plain: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    io,
  );
  if (parsed === undefined) {
    io.stderr(help);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  const [file, ...targets] = positionals;
  if (file === undefined) {
    errorLine(io, 'run needs a pipeline file');
    io.stderr(help);
    return 2;
  }
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1)) {
    errorLine(io, `-j ${values.jobs}: expected a positive integer`);
    return 2;
  }
  const device = readDeviceFlag(values.device);
  if (!device.ok) {
    errorLine(io, device.message);
    return 2;
  }
  const loaded = loadGraph({ file, set: values.set, params: values.params, use: values.use }, io);
  if (loaded === undefined) return 2;

  // A reader that goes away (`cfpipe run … | head`) must not kill the run: output is dropped.
  process.stdout.on('error', () => {});
  const width = process.stdout.columns ?? 100;
  let sink: EventSink;
  let done: () => Promise<void> = async () => {};
  if (values.json) sink = jsonSink(process.stdout);
  else if (process.stdout.isTTY && !values.plain && !process.env.CI) {
    const { listrInterface } = await import('../../ui/listr.js');
    const ui = listrInterface(process.stdout);
    sink = ui.sink;
    done = ui.done;
  } else sink = plainSink(process.stdout, { width });

  const result = await runPipeline(loaded.graph, {
    root: loaded.root,
    targets,
    only: values.only,
    from: values.from,
    force: values.force,
    ...(jobs !== undefined ? { jobs } : {}),
    device: device.device,
    keepGoing: values['keep-going'],
    dryRun: values['dry-run'],
    waitForLock: values.wait ? 7 * 24 * 3600 * 1000 : 0,
    sinks: [sink],
    command: ['cfpipe', 'run', ...argv].join(' '),
    graphOptions: recordGraphOptions(values, values.device),
    handleSignals: true,
  });
  await done();
  if (result.status === 'refused') errorLine(io, result.message);
  return exitCodeOf(result);
}
