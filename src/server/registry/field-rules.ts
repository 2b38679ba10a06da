// The rules a registration's fields must pass, whichever API they came through (Varlink's Register,
// D-Bus's RegisterMachine*/CreateMachine*): paths, strings, PIDs, interface indices, vsock CIDs, and
// whether a process reference still names the process the caller meant. Each binding reads its own wire
// format and applies these; machine names are the domain layer's (src/domain/machine-name.ts).

import type { ProcessProbe, ProcessRef } from './machine.js';

const PATH_MAX = 4096;
const NAME_MAX = 255;
export const INT32_MAX = 0x7fffffff;
export const UINT32_MAX = 0xffffffff;

/** A path the kernel could accept: non-empty, no NUL, below PATH_MAX, no component longer than NAME_MAX. */
export function isValidPath(p: string): boolean {
  if (p.length === 0 || p.includes('\0')) return false;
  if (Buffer.byteLength(p) >= PATH_MAX) return false;
  return p.split('/').every((c) => Buffer.byteLength(c) <= NAME_MAX);
}

/** No `.` or `..` components and no doubled slashes (a single trailing slash is fine). */
export function isNormalizedPath(p: string): boolean {
  if (!isValidPath(p)) return false;
  if (p.includes('//')) return false;
  return p.split('/').every((c) => c !== '.' && c !== '..');
}

export const isAbsolutePath = (p: string): boolean => p.startsWith('/');

/** No control characters, quotes or backslashes. */
export function isSafeString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x22 || c === 0x27 || c === 0x5c) return false;
  }
  return true;
}

export const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A PID a client may name as leader: a positive pid_t, not PID 1. */
export function isRegistrablePid(v: unknown): v is number {
  return isInt(v) && v > 1 && v <= INT32_MAX;
}


/** A network interface index as the kernel gives them: 1 .. INT32_MAX. */
export const isValidIfIndex = (v: unknown): v is number => isInt(v) && v >= 1 && v <= INT32_MAX;

/** A regular vsock CID: not ANY (-1U), HYPERVISOR (0), LOCAL (1) or HOST (2). */
export const isRegularVSockCid = (v: number): boolean => v >= 3 && v < UINT32_MAX;

/**
 * Does the reference name a registrable process that exists, and, when it carries a pidfd inode number
 * or a boot ID, the very process the caller meant (a mismatch means the PID was reused, or the caller
 * is on another boot)? Identity fields the probe cannot check are taken as given.
 */
export function verifyProcessRef(ref: ProcessRef, probe: ProcessProbe): boolean {
  if (!isRegistrablePid(ref.pid) || !probe.exists(ref.pid)) return false;
  if (ref.pidfdId !== undefined) {
    const actual = probe.pidfdId?.(ref.pid);
    if (actual !== undefined && actual !== ref.pidfdId) return false;
  }
  if (ref.bootId !== undefined) {
    const local = probe.bootId?.();
    if (local !== undefined && ref.bootId !== local) return false;
  }
  return true;
}
