/**
 * What berth's programs read about processes and this boot, each read in one place: whether a PID
 * exists, who owns it and who may signal it (/proc/PID/status), when it started (/proc/PID/stat), the
 * boot id, and the realtime instant the system booted.
 */
import fs from 'node:fs';
import { CLOCK_BOOTTIME, CLOCK_REALTIME, clockUs } from './libc.js';
import { readProcText } from './proc-read.js';

/** USER_HZ: the unit of /proc's clock-tick fields, fixed on Linux. */
const USER_HZ = 100;

/** Does the process exist (zombies included)? */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Start time of a process (field 22 of /proc/PID/stat, clock ticks after boot), or undefined when it does not exist. */
export function readStartTime(pid: number): number | undefined {
  const text = readProcText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  const v = Number(rest[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** Real UID owning a process, or undefined when it does not exist. */
export function processUid(pid: number): number | undefined {
  return processUids(pid)?.real;
}

/** The real and saved user IDs of a process (the Uid: line of /proc/PID/status), or undefined if it is gone. */
function processUids(pid: number): { real: number; saved: number } | undefined {
  const text = readProcText(`/proc/${pid}/status`);
  const m = text === undefined ? null : /^Uid:\s+(\d+)\s+\d+\s+(\d+)/m.exec(text);
  return m ? { real: Number(m[1]), saved: Number(m[2]) } : undefined;
}

/**
 * Whether a process running as `uid` could signal `pid` itself: kill(2)'s rule, the sender's uid
 * equal to the target's real or saved user ID. False when the process is gone.
 */
export function uidMaySignal(uid: number, pid: number): boolean {
  const ids = processUids(pid);
  return ids !== undefined && (ids.real === uid || ids.saved === uid);
}

let bootIdCache: string | undefined;
/** This boot's ID, 32 lowercase hex digits (the kernel's UUID without its dashes). Throws when /proc has none. */
export function bootId(): string {
  bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replace(/-/g, '');
  return bootIdCache;
}

/** CLOCK_REALTIME of the moment the system booted, in µs (as machined dates `.host`). */
export function bootRealtimeUs(): number {
  const boottime = clockUs(CLOCK_BOOTTIME);
  return clockUs(CLOCK_REALTIME) - boottime;
}

/** Realtime (µs) at which a process with this start time (clock ticks after boot) started. */
export function startRealtime(starttime: number): number {
  return bootRealtimeUs() + (starttime / USER_HZ) * 1e6;
}
