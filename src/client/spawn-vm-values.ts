// The values of `berth-spawn --vm`'s options, read as systemd-vmspawn reads them: booleans and tristates,
// sizes, bounded numbers, UUIDs, credential ids and C-escaped credential values, --bind and --extra-drive.
// Each refusal is a VmUsageError that names the option.

import { credentialNameRefusal, isValidCredentialName } from '../domain/credential-name.js';
import { cunescapeBytes } from '../domain/c-escape.js';
import { parseMachineUuid } from '../domain/id128.js';
import { parseBind as parseBindSpec, parseBoolean as booleanWord, type BindMount } from '../domain/option-values.js';
import { VmUsageError, type Tristate } from '../launcher/vm/options.js';

export function parseBoolean(value: string, name: string): boolean {
  const b = booleanWord(value);
  if (b !== undefined) return b;
  throw new VmUsageError(`${name}: expected a boolean (yes/no), got "${value}"`);
}

export function parseTristate(value: string | undefined, name: string): Tristate {
  if (value === undefined) return 'yes';
  if (value.toLowerCase() === 'auto') return 'auto';
  return parseBoolean(value, name) ? 'yes' : 'no';
}

/** Sizes as systemd parses them: a number with an optional K, M, G, T suffix (base 1024); bare numbers are bytes. */
export function parseSize(value: string, name: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(value.trim());
  if (!m) throw new VmUsageError(`${name}: cannot parse size "${value}" (e.g. 512M, 2G)`);
  const exp = ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
  const bytes = Math.floor(Number(m[1]) * 1024 ** exp);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new VmUsageError(`${name}: size out of range: "${value}"`);
  return bytes;
}

export function parseUnsigned(value: string, name: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(value)) throw new VmUsageError(`${name}: expected a number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new VmUsageError(`${name}: ${n} is out of range [${min}, ${max}]`);
  return n;
}

/** Normalises a UUID given with or without dashes to the dashed lowercase form. */
export function parseUuid(value: string, name = '--uuid'): string {
  try {
    return parseMachineUuid(value);
  } catch (e) {
    throw new VmUsageError(`${name}: ${(e as Error).message}`);
  }
}


/** C-style escapes in --set-credential values, read strictly as vmspawn does. */
export function unescapeC(s: string, name: string): Buffer {
  try {
    return cunescapeBytes(s);
  } catch (e) {
    throw new VmUsageError(`${name}: ${(e as Error).message}`);
  }
}

/** ID:VALUE (--set-credential) or ID:PATH (--load-credential), the id checked. */
export function splitCredential(value: string, name: string): [string, string] {
  const i = value.indexOf(':');
  if (i <= 0) throw new VmUsageError(`${name}: expected ID:${name === '--set-credential' ? 'VALUE' : 'PATH'}, got "${value}"`);
  const id = value.slice(0, i);
  if (!isValidCredentialName(id)) throw new VmUsageError(`${name}: ${credentialNameRefusal(id)}`);
  return [id, value.slice(i + 1)];
}

/** SOURCE[:TARGET] of a virtiofs share; mount options are refused. */
export function parseBind(value: string, name: string, readOnly: boolean): BindMount {
  let b;
  try {
    b = parseBindSpec(value, readOnly);
  } catch (e) {
    throw new VmUsageError((e as Error).message);
  }
  if (b.options) throw new VmUsageError(`${name}: expected SOURCE[:TARGET], got "${value}" (mount options are not supported)`);
  return { source: b.source, target: b.target, readOnly };
}

/** PATH or FORMAT:PATH; without a format, a .qcow2 name is qcow2 and anything else raw. */
export function parseExtraDrive(value: string): { path: string; format: 'raw' | 'qcow2' } {
  const m = /^(raw|qcow2):(.+)$/.exec(value);
  const path = m ? m[2]! : value;
  if (!path) throw new VmUsageError('--extra-drive: empty path');
  const format = m ? (m[1] as 'raw' | 'qcow2') : /\.qcow2$/i.test(path) ? 'qcow2' : 'raw';
  return { path, format };
}
