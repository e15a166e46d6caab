// `--device cpu|cuda|cuda:N|auto`, read the same way by `run` and `plan`: the same default and
// the same message for a value that is none of these.

import { DEVICE_SYNTAX, parseDevice, type DeviceRequest } from '../exec/device.js';

/** The parseArgs spec of `--device`: no default here, so a command can tell a given flag from none; readDeviceFlag reads none as auto. */
export const DEVICE_OPTION = { type: 'string' } as const;

export type DeviceFlag = { readonly ok: true; readonly device: DeviceRequest } | { readonly ok: false; readonly message: string };

/** The request `--device VALUE` makes (auto when not given), or the one-line message for a malformed value. */
export function readDeviceFlag(value: string | undefined): DeviceFlag {
  if (value === undefined) return { ok: true, device: { kind: 'auto' } };
  const device = parseDevice(value);
  return device === undefined ? { ok: false, message: `--device ${value}: expected ${DEVICE_SYNTAX}` } : { ok: true, device };
}
