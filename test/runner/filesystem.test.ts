// The store's refusal of network filesystems: the decision on statfs magic numbers (linux/magic.h
// and the vendors' headers), the real statfs of local folders, and the refusal message of a
// store opened on one. A real loopback network mount (sshfs) is exercised where one can be made.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { networkFilesystemAt, networkFilesystemOfType } from '../../runner/store/filesystem.js';
import { cfpipeBin, fromRoot } from '../util/paths.js';

describe('network filesystem decision', () => {
  test('network and cluster filesystems are named by their statfs magic', () => {
    const cases: [number, string][] = [
      [0x6969, 'NFS'],
      [0xff534d42, 'CIFS'],
      [0xfe534d42, 'SMB2'],
      [0x517b, 'SMB'],
      [0x65735546, 'FUSE'], // sshfs, gcsfuse, s3fs... all report FUSE_SUPER_MAGIC
      [0x00c36400, 'Ceph'],
      [0x0bd00bd0, 'Lustre'],
      [0x47504653, 'GPFS'],
      [0x01021997, '9p'],
      [0x5346414f, 'AFS'],
      [0x19830326, 'FhGFS/BeeGFS'],
    ];
    for (const [magic, name] of cases) assert.equal(networkFilesystemOfType(magic), name, `0x${magic.toString(16)}`);
  });

  test('a magic number that arrives signed or as a bigint is read as unsigned 32 bits', () => {
    assert.equal(networkFilesystemOfType(0xff534d42 | 0), 'CIFS'); // -11317950
    assert.equal(networkFilesystemOfType(0xfe534d42 | 0), 'SMB2');
    assert.equal(networkFilesystemOfType(0x6969n), 'NFS');
  });

  test('local filesystems pass', () => {
    const local: [number, string][] = [
      [0xef53, 'ext2/3/4'],
      [0x58465342, 'xfs'],
      [0x9123683e, 'btrfs'],
      [0x01021994, 'tmpfs'],
      [0x794c7630, 'overlayfs'],
      [0x2fc12fc1, 'zfs'],
      [0x4d44, 'vfat'],
    ];
    for (const [magic, name] of local) assert.equal(networkFilesystemOfType(magic), undefined, name);
  });

  test('the real statfs of the temp folder is read and judged', () => {
    const type = statfsSync(tmpdir()).type;
    assert.equal(networkFilesystemAt(tmpdir()), networkFilesystemOfType(type));
  });
});

describe('a project on a real network filesystem (sshfs over loopback)', () => {
  const script = fromRoot('test', 'runner', 'netfs', 'sshfs.sh');
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-sshfs-'));
  const up = spawnSync('sh', [script, 'up', dir], { encoding: 'utf8', timeout: 180_000 });
  const unavailable = up.status === 77 ? up.stderr.trim() : undefined;
  if (unavailable) console.log(`# skipping the sshfs test: ${unavailable}`);
  after(() => {
    spawnSync('sh', [script, 'down', dir], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  });

  test('cfpipe run refuses to put its store there, with a clear message and no LMDB files', { skip: unavailable }, () => {
    assert.equal(up.status, 0, `sshfs.sh up failed:\n${up.stderr}`);
    const mount = up.stdout.trim();
    assert.equal(networkFilesystemAt(mount), 'FUSE');
    const root = join(mount, 'project');
    mkdirSync(root);
    writeFileSync(join(root, 'package.json'), '{}');
    writeFileSync(join(root, 'p.cf'), 'pipeline "netfs"\n\nstage a: exec {\n  command = "true"\n}\n');
    const r = spawnSync(process.execPath, [cfpipeBin, 'run', 'p.cf'], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' }, timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /state store .* is on a network filesystem \(FUSE\); LMDB is only safe on a local disk/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(join(root, '.cfpipe', 'state')), false, 'no LMDB environment was created');
  });
});
