// Kill -9 of the runner or a worker at a few representative moments; the long suite
// (fault-injection.long.test.ts) covers every moment of KILL_MOMENTS.

import { before, describe, test } from 'node:test';
import { KILL_MOMENTS, killAndResume, referenceOutputs } from './fixtures/fault-scenarios.js';

const QUICK = ['runner at a checkpoint 1', 'runner during a publish', 'worker of a at checkpoint 2', 'runner while b writes'];

describe('fault injection (quick set)', () => {
  let reference: Map<string, Buffer>;
  before(async () => {
    reference = await referenceOutputs();
  });
  for (const moment of KILL_MOMENTS.filter((m) => QUICK.includes(m.name))) {
    test(`SIGKILL ${moment.name}: the rerun finishes with identical outputs`, async () => {
      await killAndResume(moment, reference);
    });
  }
});
