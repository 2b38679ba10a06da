// The one rule for machine names, shared by berthd, berth-spawn (containers and VMs), the .berth configuration
// and berthctl: a machine name is a valid host name, as machined requires. Also the message every program prints
// when it refuses a name, and the default name nspawn and vmspawn derive from a directory or image path.

import { hostname } from 'node:os';
import { basename } from 'node:path';

/** Longest host name Linux accepts (HOST_NAME_MAX). */
export const HOST_NAME_MAX = 64;

/** The synthetic entry for the host itself; a name lookups accept but nobody may register. */
export const HOST_MACHINE = '.host';

const isLdhChar = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

/**
 * Host name syntax: 1..64 characters of ASCII letters, digits, `-` and `.`; labels are separated by single dots
 * and neither begin nor end with `-`; no leading or trailing dot. `.host` passes only with `allowDotHost`.
 */
export function isValidHostname(s: string, allowDotHost = false): boolean {
  if (typeof s !== 'string' || s.length === 0) return false;
  if (s === HOST_MACHINE) return allowDotHost;
  if (s.length > HOST_NAME_MAX) return false;
  let atLabelStart = true; // just after the beginning or a dot
  let afterHyphen = false;
  for (const c of s) {
    if (c === '.') {
      if (atLabelStart || afterHyphen) return false;
      atLabelStart = true;
      afterHyphen = false;
    } else if (c === '-') {
      if (atLabelStart) return false;
      afterHyphen = true;
    } else if (isLdhChar(c)) {
      atLabelStart = false;
      afterHyphen = false;
    } else {
      return false;
    }
  }
  return !atLabelStart && !afterHyphen;
}

/** A name a machine may be registered (or configured, or launched) under. */
export const isValidMachineName = (s: string): boolean => isValidHostname(s, false);

/** A name a lookup may use: a machine name, or `.host` for the host. */
export const isValidLookupName = (s: string): boolean => isValidHostname(s, true);

/** What every program says when it refuses a machine name. */
export function machineNameRefusal(name: string): string {
  return `invalid machine name "${name}": a machine name is a host name of 1 to ${HOST_NAME_MAX} letters, digits, "-" and ".", whose dot-separated labels neither start nor end with "-"`;
}

/** What berth-spawn says when the default name cannot be derived (nspawn asks for -M then, too). */
export function defaultNameRefusal(from: string): string {
  return `cannot derive a machine name from "${from}": give -M NAME`;
}

/**
 * Turn arbitrary text into host name syntax the way systemd tidies a host name: characters outside letters,
 * digits, `-` and `.` are dropped, as are dots and hyphens where a label cannot have them (a dot at the start,
 * after another dot or after a hyphen; a hyphen at the start of a label), the result is cut at 64 characters
 * and a trailing `-` or `.` removed. The result may still be empty.
 */
export function hostnameCleanup(s: string): string {
  let out = '';
  let atLabelStart = true;
  let afterHyphen = true;
  for (const c of s) {
    if (out.length >= HOST_NAME_MAX) break;
    if (c === '.') {
      if (atLabelStart || afterHyphen) continue;
      out += c;
      atLabelStart = true;
      afterHyphen = false;
    } else if (c === '-') {
      if (atLabelStart) continue;
      out += c;
      afterHyphen = true;
    } else if (isLdhChar(c)) {
      out += c;
      atLabelStart = false;
      afterHyphen = false;
    }
  }
  return out.replace(/[-.]$/, '');
}

/**
 * The default machine name for a directory or image path, as nspawn and vmspawn pick it: the last path
 * component (the host name for `/`), with `stripSuffix` removed, tidied by hostnameCleanup. Undefined when
 * nothing valid is left; callers then refuse with defaultNameRefusal().
 */
export function defaultMachineName(path: string, stripSuffix?: RegExp): string | undefined {
  const trimmed = path.replace(/\/+$/, '');
  let base = trimmed === '' && path.startsWith('/') ? hostname() : basename(trimmed);
  if (stripSuffix) base = base.replace(stripSuffix, '');
  const name = hostnameCleanup(base);
  return isValidMachineName(name) ? name : undefined;
}
