// Leader processes: pinning them with a pidfd, telling a reused PID from the original process, checking
// that they still run, signalling them and letting them go.
//
// A pidfd refers to one process for its whole life, so once a leader is pinned a recycled PID cannot be
// mistaken for it. (Noticing their exit is leader-watcher.ts.)

import fs from 'node:fs';
import { ESRCH, libc, pidfdOpen, pidfdSendSignal, POLLHUP, POLLIN, POLLNVAL } from '../../domain/libc.js';
import { readStartTime, startRealtime } from '../../domain/process.js';

/** A pinned leader: the pidfd keeps referring to this very process even after its PID is reused. */
export interface Leader {
  pid: number;
  /** -1 once closed. */
  pidfd: number;
  /** st_ino of the pidfd when pidfd inode numbers identify processes on this kernel (pidfs, Linux ≥ 6.9). */
  pidfdId?: number;
  /** Field 22 of /proc/PID/stat: start time in clock ticks after boot (read only when there is no pidfdId). */
  starttime?: number;
}

let pidfdIdsUniqueCache: boolean | undefined;

/** Whether pidfd inode numbers tell processes apart here (they do with pidfs; older kernels share one inode). */
export function pidfdIdsUnique(): boolean {
  if (pidfdIdsUniqueCache !== undefined) return pidfdIdsUniqueCache;
  const a = pidfdOpen(process.pid);
  const b = pidfdOpen(1);
  try {
    pidfdIdsUniqueCache = a >= 0 && b >= 0 && fs.fstatSync(a).ino !== fs.fstatSync(b).ino;
  } catch {
    pidfdIdsUniqueCache = false;
  } finally {
    if (a >= 0) libc().close(a);
    if (b >= 0) libc().close(b);
  }
  return pidfdIdsUniqueCache;
}

function inodeOf(fd: number): number | undefined {
  if (!pidfdIdsUnique()) return undefined;
  try {
    return fs.fstatSync(fd).ino;
  } catch {
    return undefined;
  }
}

/** The pidfd inode number of a live process, if such numbers are meaningful here. */
export function pidfdIdOf(pid: number): number | undefined {
  const fd = pidfdOpen(pid);
  if (fd < 0) return undefined;
  try {
    return inodeOf(fd);
  } finally {
    libc().close(fd);
  }
}

/** What a previously recorded leader must still match to count as the same process. */
export interface LeaderIdentity {
  pidfdId?: number;
  starttime?: number;
  /** The leader existed at this CLOCK_REALTIME instant (µs): a process started later is a different one. */
  aliveAtRealtime?: number;
}

/**
 * Pin a process as a leader. With `expect`, refuse a process that is not the recorded one (PID reused):
 * pidfd inode mismatch, start time mismatch, or started after the moment it was known alive.
 * Returns the leader or a negative errno (-ESRCH when gone or not the same process).
 */
export function pinLeader(pid: number, expect?: LeaderIdentity): Leader | number {
  const fd = pidfdOpen(pid);
  if (fd < 0) return fd;
  const pidfdId = inodeOf(fd);
  // Where pidfd inode numbers name processes, the pidfd is the identity and /proc/PID/stat is read only to
  // check a record that has no such number. Otherwise the start time is read after opening the pidfd: if
  // the process is still alive then, the pidfd refers to it.
  const byInode = pidfdId !== undefined && (expect === undefined || expect.pidfdId !== undefined || (expect.starttime === undefined && expect.aliveAtRealtime === undefined));
  if (byInode) {
    if (expect?.pidfdId !== undefined && expect.pidfdId !== pidfdId) {
      libc().close(fd);
      return -ESRCH;
    }
    return { pid, pidfd: fd, pidfdId };
  }
  const starttime = readStartTime(pid);
  // (A record with a pidfd id, where this kernel has them too, was decided by inode above.)
  const fresh = starttime !== undefined && (() => {
    if (expect?.starttime !== undefined) return expect.starttime === starttime;
    // 20 ms of slack: /proc/uptime and the start time have a 10 ms resolution.
    if (expect?.aliveAtRealtime !== undefined) return startRealtime(starttime) <= expect.aliveAtRealtime + 20_000;
    return true;
  })();
  if (!fresh) {
    libc().close(fd);
    return -ESRCH;
  }
  return { pid, pidfd: fd, ...(pidfdId !== undefined ? { pidfdId } : {}), starttime: starttime! };
}

/** What is recorded of a pinned process (a machine's leader, its supervisor): PID, and the fields that tell it apart. */
export function identityOf(l: Leader): { pid: number; starttime?: number; pidfdId?: number } {
  return {
    pid: l.pid,
    ...(l.starttime !== undefined ? { starttime: l.starttime } : {}),
    ...(l.pidfdId !== undefined ? { pidfdId: l.pidfdId } : {}),
  };
}

/** One pollfd reused by every liveness check (they are synchronous), so a lookup allocates nothing. */
const alivePollFd = Buffer.alloc(8);

/** Is the pinned leader still running? A pidfd turns readable when its process exits (zombies count as exited). */
export function leaderAlive(leader: Leader): boolean {
  if (leader.pidfd < 0) return false;
  const pfd = alivePollFd;
  pfd.writeInt32LE(leader.pidfd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  pfd.writeInt16LE(0, 6);
  const r = libc().poll(pfd, 1, 0);
  if (r < 0) return false;
  return (pfd.readInt16LE(6) & (POLLIN | POLLHUP | POLLNVAL)) === 0;
}

/** Send a signal to the pinned leader; returns 0 or a negative errno. */
export function signalLeader(leader: Leader, signal: number): number {
  if (leader.pidfd < 0) return -ESRCH;
  return pidfdSendSignal(leader.pidfd, signal);
}

export function closeLeader(leader: Leader): void {
  if (leader.pidfd >= 0) libc().close(leader.pidfd);
  leader.pidfd = -1;
}
