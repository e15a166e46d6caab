// `--device cpu|cuda|cuda:N|auto`, read the same way by `run` and `plan`: the same default and
// the same message for a value that is none of these.

import { DEVICE_SYNTAX, parseDevice, type DeviceRequest } from '../exec/device.js';

/** The parseArgs spec of `--device` (auto unless given). */
export const DEVICE_OPTION = { type: 'string', default: 'auto' } as const;

export type DeviceFlag = { readonly ok: true; readonly device: DeviceRequest } | { readonly ok: false; readonly message: string };

/** The request `--device VALUE` makes, or the one-line message for a malformed value. */
export function readDeviceFlag(value: string): DeviceFlag {
  const device = parseDevice(value);
  return device === undefined ? { ok: false, message: `--device ${value}: expected ${DEVICE_SYNTAX}` } : { ok: true, device };
}
