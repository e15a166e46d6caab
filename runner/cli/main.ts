// Placeholder entry replaced by the CLI module.
process.stdout.write('cfpipe\n');
