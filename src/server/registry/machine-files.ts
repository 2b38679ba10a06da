// Reaching a machine's files from the host: opening, reading and stat-ing a path inside the machine's root
// directory tree (usually /proc/LEADER/root) as a process chrooted there would resolve it.

import fs from 'node:fs';
import { EIO, ENOENT, O_CLOEXEC, O_DIRECTORY, O_PATH, openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS } from '../../domain/libc.js';

/**
 * Opens `path` inside the directory tree `root` as a process chrooted there would (openat2 with
 * RESOLVE_IN_ROOT): absolute symlinks and `..` stay inside `root`. A machine's files, reached from
 * the host through /proc/LEADER/root, must be opened this way, or a symlink placed in the machine
 * would lead berthd (root) to a file of the host. `flags` are open(2) flags; returns a descriptor,
 * or throws an Error carrying `errno`.
 */
export function openInRoot(root: string, path: string, flags: number): number {
  let dir: number;
  try {
    dir = fs.openSync(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  } catch (e) {
    throw Object.assign(new Error(`cannot open ${root}`), { errno: Math.abs((e as NodeJS.ErrnoException).errno ?? ENOENT) });
  }
  try {
    const fd = openat2(dir, path.replace(/^\/+/, '') || '.', flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) throw Object.assign(new Error(`cannot open ${path} in ${root}`), { errno: -fd });
    return fd;
  } finally {
    fs.closeSync(dir);
  }
}

/** The file at `path` inside `root` (see openInRoot); undefined when there is none there. */
export function statInRoot(root: string, path: string): fs.Stats | undefined {
  let fd: number;
  try {
    fd = openInRoot(root, path, O_PATH);
  } catch {
    return undefined;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads the regular file at `path` inside `root` (see openInRoot). Throws an Error carrying `errno`:
 * ENOENT when there is no such file, EIO when it is not a regular file.
 */
export function readFileInRoot(root: string, path: string): string {
  const fd = openInRoot(root, path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} in ${root} is not a regular file`), { errno: EIO });
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}
