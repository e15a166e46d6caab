// The hub server of the fetch benchmark in its own process, so the downloader measured (cfpipe
// or curl) never shares a thread with the server. Prints {"url": …} once listening.
import { HubServer, bytesOf } from '../fetch/hub_server.js';

const size = Number(process.argv[2] ?? String(256 * 1024 * 1024));
const commit = 'c'.repeat(40);
const hub = await HubServer.start([
  { type: 'model', id: 'bench/big', access: 'public', refs: { main: commit }, commits: { [commit]: [{ path: 'big.bin', content: bytesOf(size, 5), lfs: true }] } },
]);
process.stdout.write(`${JSON.stringify({ url: hub.url })}\n`);
process.on('SIGTERM', () => void hub.close().then(() => process.exit(0)));
