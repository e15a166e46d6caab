// LMDB must not live on a network filesystem: its lock file and memory map are only coherent
// between processes of one host on a local disk (lmdb.h "Caveats"). statfs tells us the type.

import { statfsSync } from 'node:fs';

/** statfs magic numbers of network and cluster filesystems (linux/magic.h and vendors). */
const NETWORK_FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x6969, 'NFS'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x00c36400, 'Ceph'],
  [0x0bd00bd0, 'Lustre'],
  [0x47504653, 'GPFS'],
  [0x01021997, '9p'],
  [0x5346414f, 'AFS'],
  [0x6b414653, 'AFS (kAFS)'],
  [0x013111a8, 'IBRIX'],
  [0xa501fcf5, 'VxFS/CFS'],
  [0x19830326, 'FhGFS/BeeGFS'],
  [0x564c, 'NCP'],
  [0x73757245, 'Coda'],
  [0x65735546, 'FUSE'], // may be local (e.g. an overlay), but sshfs/gcsfuse are common: refuse to be safe
]);

/** The network filesystem a statfs `f_type` names, or undefined for a local one (the decision alone). */
export function networkFilesystemOfType(type: number | bigint): string | undefined {
  // f_type comes signed on some ABIs (0xff534d42 as a negative int32): compare as unsigned 32 bits.
  return NETWORK_FILESYSTEMS.get(Number(BigInt.asUintN(32, BigInt(type))));
}

/** The name of the network filesystem `path` sits on, or undefined for a local one. */
export function networkFilesystemAt(path: string): string | undefined {
  return networkFilesystemOfType(statfsSync(path).type);
}
