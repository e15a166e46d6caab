// Running checksums of a file being written sequentially: sha256 always (it is also the digest the
// runner records for the output), plus the git blob sha1 when the hub verifies a file that way.

import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export class RunningDigest {
  #sha256: Hash;
  #gitSha1: Hash | undefined;
  #offset = 0;
  readonly #gitSize: number | undefined;

  /** `gitSize`: the blob size, when a git blob sha1 is wanted (it is part of the hashed header). */
  constructor(gitSize: number | undefined) {
    this.#gitSize = gitSize;
    this.#sha256 = createHash('sha256');
    this.#gitSha1 = this.#newGit();
  }

  #newGit(): Hash | undefined {
    if (this.#gitSize === undefined) return undefined;
    return createHash('sha1').update(`blob ${this.#gitSize}\0`);
  }

  /** Bytes hashed so far (must equal the file's length at every write). */
  get offset(): number {
    return this.#offset;
  }

  update(chunk: Uint8Array): void {
    this.#sha256.update(chunk);
    this.#gitSha1?.update(chunk);
    this.#offset += chunk.length;
  }

  reset(): void {
    this.#sha256 = createHash('sha256');
    this.#gitSha1 = this.#newGit();
    this.#offset = 0;
  }

  /** Hash the first `length` bytes of an existing partial file (resume after a restart). */
  async absorbFile(path: string, length: number): Promise<void> {
    this.reset();
    if (length === 0) return;
    for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) {
      this.update(chunk as Buffer);
    }
  }

  finish(): { sha256: string; gitSha1: string | undefined } {
    return { sha256: this.#sha256.digest('hex'), gitSha1: this.#gitSha1?.digest('hex') };
  }
}
