/**
 * Reads small kernel files (/proc/PID/stat, status, cgroup) with one open, one read and one close into a
 * buffer kept for the purpose: fs.readFileSync also stats the file and reads again until EOF, and the
 * Register path reads several of these per call.
 */
import fs from 'node:fs';

const BUF = Buffer.allocUnsafe(16 * 1024);

/** The file's text (latin1), or undefined when it cannot be opened or read (the process is gone). */
export function readProcText(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const n = fs.readSync(fd, BUF, 0, BUF.length, null);
    // A /proc file hands out all it has up to the size asked for; a full buffer may mean more follows.
    if (n < BUF.length) return BUF.toString('latin1', 0, n);
    return BUF.toString('latin1', 0, n) + fs.readFileSync(fd, 'latin1');
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}
