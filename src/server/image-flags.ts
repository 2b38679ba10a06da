/**
 * The inode flag machined uses as a directory image's read-only mark: FS_IMMUTABLE_FL, read and set with
 * the FS_IOC_GETFLAGS/FS_IOC_SETFLAGS ioctls through berth's libc binding. File systems without inode
 * flags answer ENOTTY/EOPNOTSUPP, which callers see as errno values.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { errno, libc } from '../domain/libc.js';

const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_IMMUTABLE_FL = 0x10;

function withFd<T>(path: string, action: (fd: number) => T): T {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  try {
    return action(fd);
  } finally {
    closeSync(fd);
  }
}

function getFlags(fd: number): number {
  const buf = Buffer.alloc(8);
  if (libc().ioctl(fd, FS_IOC_GETFLAGS, 'uint8_t *', buf) !== 0) throw Object.assign(new Error('FS_IOC_GETFLAGS failed'), { errno: errno() });
  return buf.readInt32LE(0);
}

/** Whether the immutable flag is set; false where the file system keeps no flags. */
export function isImmutable(path: string): boolean {
  try {
    return withFd(path, (fd) => (getFlags(fd) & FS_IMMUTABLE_FL) !== 0);
  } catch {
    return false;
  }
}

/** Sets or clears the immutable flag; throws an Error carrying `errno` when the file system refuses. */
export function setImmutable(path: string, on: boolean): void {
  withFd(path, (fd) => {
    const flags = getFlags(fd);
    const next = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    if (next === flags) return;
    const buf = Buffer.alloc(8);
    buf.writeInt32LE(next, 0);
    if (libc().ioctl(fd, FS_IOC_SETFLAGS, 'uint8_t *', buf) !== 0) throw Object.assign(new Error('FS_IOC_SETFLAGS failed'), { errno: errno() });
  });
}
