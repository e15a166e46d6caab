// Bad input from JS gives a clear error naming what was expected; native failures carry the C++
// file:line; nothing crashes the process (every case here runs in this one test process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fitLinear,
  isNativeError,
  loadCheckpoint,
  readCheckedSafetensors,
  readSafetensors,
  saveCheckpoint,
  writeSafetensors,
  type NativeError,
  type TensorInput,
} from '../../native/index.js';
import { fromRoot } from '../util/paths.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'cfpipe-native-err-'));

/** Asserts a native error (cfp::Error) with a message matching `message` and a C++ location. */
function nativeError(message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isNativeError(e), `expected a native error, got ${String(e)}`);
    const n = e as NativeError;
    assert.equal(n.code, 'CFP_NATIVE');
    assert.match(n.message, message);
    assert.match(n.file ?? '', /^native\/core\/\w+\.cpp$/);
    assert.ok((n.line ?? 0) > 0);
    assert.ok(n.message.endsWith(`(${n.file}:${n.line})`), n.message);
    return true;
  };
}

function argumentError(message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof TypeError, `expected a TypeError, got ${String(e)}`);
    assert.equal((e as NativeError).code, 'CFP_INVALID_ARGUMENT');
    assert.match(e.message, message);
    return true;
  };
}

test('wrong tensor dtypes, lengths and shapes from JS are refused with what was expected', () => {
  const dir = scratch();
  try {
    const p = join(dir, 'x.safetensors');
    const write = (t: unknown): void => writeSafetensors(p, [t as TensorInput]);
    assert.throws(() => write({ name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array(5) }),
      argumentError(/tensors\[0\] \("w"\)\.data has 5 values, expected 6 for shape \[2, 3\]/));
    assert.throws(() => write({ name: 'w', dtype: 'F32', shape: [2], data: new Int32Array(2) }),
      argumentError(/\.data is a Int32Array, expected a Float32Array for dtype F32/));
    assert.throws(() => write({ name: 'w', dtype: 'F16', shape: [2], data: new Float64Array(2) }),
      argumentError(/expected a Uint16Array \(raw bits\) or Float32Array for dtype F16/));
    assert.throws(() => write({ name: 'w', dtype: 'Q8', shape: [2], data: new Float32Array(2) }),
      argumentError(/dtype must be one of F32, F16, BF16.*got "Q8"/));
    assert.throws(() => write({ name: 'w', shape: [2, -1], data: new Float32Array(2) }),
      argumentError(/shape\[1\] must be an integer in \[0, \d+\], got -1/));
    assert.throws(() => write({ name: 'w', shape: [1.5], data: new Float32Array(2) }), argumentError(/got 1\.5/));
    assert.throws(() => write({ name: 'w', shape: [2], data: [1, 2] }), argumentError(/data must be a Float32Array, got an array/));
    assert.throws(() => write({ shape: [2], data: new Float32Array(2) }), argumentError(/tensors\[0\]\.name must be a string, got undefined/));
    assert.throws(() => writeSafetensors(p, 'nope' as unknown as TensorInput[]), argumentError(/tensors must be an array/));
    assert.throws(() => writeSafetensors(p, [], { k: 1 } as unknown as Record<string, string>), argumentError(/metadata\["k"\] must be a string, got a number/));
    // Native-side checks (cfp::Error with file:line): duplicate names, reserved metadata.
    const t = { name: 'w', shape: [1], data: new Float32Array(1) };
    assert.throws(() => writeSafetensors(p, [t, t]), nativeError(/duplicate tensor name "w"/));
    assert.throws(() => saveCheckpoint(dir, { step: 1, weights: [t], meta: { 'cfpipe.step': '2' } }), nativeError(/"cfpipe.step" is reserved/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt and truncated safetensors files give errors naming the file and the problem', () => {
  const dir = scratch();
  try {
    const good = join(dir, 'good.safetensors');
    writeSafetensors(good, [{ name: 'w', shape: [4, 4], data: new Float32Array(16).fill(1) }]);
    const bytes = readFileSync(good);
    const bad = join(dir, 'bad.safetensors');

    writeFileSync(bad, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => readSafetensors(bad), nativeError(/bad\.safetensors: truncated safetensors file: tensor "w" ends at data byte 64 but the data section has only 54 bytes/));
    writeFileSync(bad, bytes.subarray(0, 5));
    assert.throws(() => readSafetensors(bad), nativeError(/bad\.safetensors: not a safetensors file: 5 bytes/));
    writeFileSync(bad, bytes.subarray(0, 20));
    assert.throws(() => readSafetensors(bad), nativeError(/truncated safetensors file: header says \d+ header bytes/));
    const broken = Buffer.from(bytes);
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    const lastBrace = bytes.subarray(0, headerEnd).lastIndexOf('}');
    broken.write('"', lastBrace, 'latin1'); // the header's closing brace becomes an open string
    writeFileSync(bad, broken);
    assert.throws(() => readSafetensors(bad), nativeError(/bad\.safetensors: corrupt safetensors header: .* at header byte \d+/));
    writeFileSync(bad, Buffer.concat([bytes, Buffer.from('extra')]));
    assert.throws(() => readSafetensors(bad), nativeError(/5 bytes after the last tensor belong to no tensor/));
    assert.throws(() => readSafetensors(join(dir, 'missing.safetensors')), nativeError(/cannot open .*missing\.safetensors: No such file/));
    assert.throws(() => readCheckedSafetensors(good), nativeError(/not a cfpipe checkpoint file/));
    assert.throws(() => loadCheckpoint(dir, 7), nativeError(/step-00000007\.state\.safetensors: No such file/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NaN inputs, bad options and a diverging loss reject the job promise with clear errors', async () => {
  const x = new Float32Array(4 * 2).fill(0.5);
  const y = new Float32Array(4).fill(1);
  x[5] = NaN;
  await assert.rejects(fitLinear({ samples: 4, features: 2, batch: 2, x, y }), nativeError(/fitLinear: x\[5\] is NaN; inputs must be finite/));
  y[2] = Infinity;
  x[5] = 0;
  await assert.rejects(fitLinear({ samples: 4, features: 2, batch: 2, x, y }), nativeError(/fitLinear: y\[2\] is infinite/));
  await assert.rejects(fitLinear({ samples: 4, features: 2, x: new Float32Array(7), y }), argumentError(/options\.x has 7 values, expected 8/));
  await assert.rejects(fitLinear({ samples: 4, features: 2, x: new Float64Array(8) as unknown as Float32Array, y }),
    argumentError(/options\.x must be a Float32Array, got Float64Array/));
  await assert.rejects(fitLinear({ steps: -1 }), argumentError(/options\.steps must be an integer in \[0, \d+\], got -1/));
  await assert.rejects(fitLinear({ batch: 1000, samples: 10 }), nativeError(/batch must be in \[1, samples = 10\], got 1000/));
  await assert.rejects(fitLinear({ momentum: 1 }), nativeError(/momentum must be in \[0, 1\), got 1/));
  await assert.rejects(fitLinear({ steps: 100, lr: 50 }), nativeError(/loss became non-finite \((NaN|infinite)\) at step \d+; lr = 50 is too large/));
  // The process is still healthy: a good job after all that succeeds.
  const ok = await fitLinear({ steps: 5 });
  assert.equal(ok.step, 5);
});

test('the loader says how to build when the addon is missing', () => {
  const script = `import('${fromRoot('dist', 'native', 'index.js')}').then((m) => { try { m.loadNative(); console.log('loaded'); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, CFPIPE_NATIVE_ADDON: '/nonexistent/cfpipe_native.node' },
    encoding: 'utf8',
  });
  assert.match(out, /^NativeNotBuiltError: native engine not built: run npm run setup .*Looked for: \/nonexistent\/cfpipe_native\.node/);
});
