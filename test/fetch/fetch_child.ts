// A downloader process for the kill -9 test: runs fetchAll with the options given as JSON in
// argv[2] and prints one JSON line per chunk written to disk, then the manifest.
import { fetchAll } from '../../runner/fetch/fetch.js';
import type { SourceSpec } from '../../runner/fetch/fetch.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { sources: SourceSpec[]; outDir: string; workDir: string };
const manifest = await fetchAll({
  ...args,
  stallMs: 2000,
  retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
  onEvent: (e) => {
    if (e.type === 'written' || e.type === 'request') process.stdout.write(`${JSON.stringify(e)}\n`);
  },
});
process.stdout.write(`${JSON.stringify({ type: 'done', receivedBytes: manifest.receivedBytes })}\n`);
