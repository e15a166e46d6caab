// Kill -9 of the runner or a worker at every moment of KILL_MOMENTS (≥ 20: between steps,
// during checkpoint and output writes, during publish, between tasks, at fixed delays).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { KILL_MOMENTS, killAndResume, referenceOutputs } from './fixtures/fault-scenarios.js';

describe('fault injection (every moment)', () => {
  let reference: Map<string, Buffer>;
  before(async () => {
    reference = await referenceOutputs();
  });
  test('there are at least 20 kill moments', () => {
    assert.ok(KILL_MOMENTS.length >= 20);
  });
  for (const moment of KILL_MOMENTS) {
    test(`SIGKILL ${moment.name}`, async () => {
      await killAndResume(moment, reference);
    });
  }
});
