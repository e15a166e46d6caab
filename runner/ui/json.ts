// `--json`: every run event as one JSON object per line, unchanged.

import type { EventSink } from '../events.js';

export function jsonSink(out: NodeJS.WritableStream): EventSink {
  return (event) => {
    out.write(JSON.stringify(event) + '\n');
  };
}
