#!/usr/bin/env node
// Thin entry point: check the Node version, then hand over to the compiled CLI.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `cfpipe needs Node >= 22.13 (this is ${process.versions.node}).\n` +
      `Run it through npm so the project's own Node is used: npx cfpipe ...\n`,
  );
  process.exit(2);
}
try {
  await import('../dist/runner/cli/main.js');
} catch (error) {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/runner/cli/main.js')) {
    process.stderr.write('cfpipe is not built yet: run `npm run setup` in the cfpipe folder first.\n');
    process.exit(2);
  }
  throw error;
}
