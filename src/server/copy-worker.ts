/**
 * The child process that copies one file or tree between the host and a machine (machine-fs.ts starts
 * it, so a long copy never holds berthd's event loop). It inherits two directory descriptors, the
 * source's parent as fd 3 and the destination's parent as fd 4, both already resolved safely by berthd,
 * and names one entry below each. Every step below them is a single name looked up relative to a
 * descriptor this process holds (through /proc/self/fd/N/NAME, final symlinks never followed), so a
 * symlink in the machine can never lead the copy elsewhere. It prints `{"errno":N}` (0 when done) on
 * stdout and exits.
 *
 * What it does is machined's copy: a directory merges into an existing directory (entries that exist
 * are kept, or replaced with `replace`), a file or symlink onto an existing entry fails with EEXIST unless
 * `replace` (never onto a directory), a directory onto a non-directory fails with ENOTDIR. Owners are
 * kept, or all set to `owner` when one is given (the machine's root for a user-namespaced machine).
 */
import fs from 'node:fs';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fs.constants;
const O_CLOEXEC = 0o2000000;

interface Job {
  srcName: string;
  dstName: string;
  replace: boolean;
  /** uid and gid every copied entry gets; -1 keeps the source's. */
  owner: number;
}

class Errno extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

const at = (dirFd: number, name: string) => `/proc/self/fd/${dirFd}/${name}`;
const errnoOf = (e: unknown): number => Math.abs((e as NodeJS.ErrnoException).errno ?? 5);
const lstatOrNull = (p: string): fs.Stats | null => {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
};

let tmpCounter = 0;
const tempName = (name: string) => `.#${name.slice(0, 200)}.${process.pid}.${tmpCounter++}`;

/**
 * The permission bits a copy gets: the source's, without set-user-ID and set-group-ID when every entry
 * becomes the host's root (out of a user-namespaced machine, whose root should not mint host setuid-root
 * programs; machined keeps the bits).
 */
const modeOf = (st: fs.Stats, job: Job): number => st.mode & (job.owner === 0 ? 0o1777 : 0o7777);

function setOwner(fd: number, st: fs.Stats, job: Job): void {
  const uid = job.owner >= 0 ? job.owner : st.uid;
  const gid = job.owner >= 0 ? job.owner : st.gid;
  fs.fchownSync(fd, uid, gid);
}

/** A regular file's data and attributes, written under `tmp` in dstDir (created exclusively). */
function copyFile(srcDir: number, name: string, dstDir: number, tmp: string, st: fs.Stats, job: Job): void {
  const src = fs.openSync(at(srcDir, name), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  try {
    const dst = fs.openSync(at(dstDir, tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = fs.readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += fs.writeSync(dst, buf, off, n - off);
      }
      setOwner(dst, st, job);
      fs.fchmodSync(dst, modeOf(st, job));
      fs.futimesSync(dst, st.atime, st.mtime);
    } finally {
      fs.closeSync(dst);
    }
  } finally {
    fs.closeSync(src);
  }
}

function copySymlink(srcDir: number, name: string, dstDir: number, tmp: string, st: fs.Stats, job: Job): void {
  const target = fs.readlinkSync(at(srcDir, name));
  fs.symlinkSync(target, at(dstDir, tmp));
  const uid = job.owner >= 0 ? job.owner : st.uid;
  fs.lchownSync(at(dstDir, tmp), uid, job.owner >= 0 ? job.owner : st.gid);
}

/** Copy srcDir/name to dstDir/dstName; `top` for the entry the caller named (EEXIST instead of skipping). */
function copyEntry(srcDir: number, name: string, dstDir: number, dstName: string, job: Job, top: boolean): void {
  const st = fs.lstatSync(at(srcDir, name));
  const existing = lstatOrNull(at(dstDir, dstName));
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) throw new Errno(20); // ENOTDIR, as machined
    if (!existing) fs.mkdirSync(at(dstDir, dstName), 0o700);
    const from = fs.openSync(at(srcDir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const to = fs.openSync(at(dstDir, dstName), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    try {
      for (const child of fs.readdirSync(`/proc/self/fd/${from}`)) copyEntry(from, child, to, child, job, false);
      if (!existing) {
        setOwner(to, st, job);
        fs.fchmodSync(to, modeOf(st, job));
        fs.futimesSync(to, st.atime, st.mtime);
      }
    } finally {
      fs.closeSync(from);
      fs.closeSync(to);
    }
    return;
  }
  if (existing) {
    if (!job.replace || existing.isDirectory()) {
      if (top) throw new Errno(17); // EEXIST
      return; // a merge keeps what is there
    }
  }
  if (!st.isFile() && !st.isSymbolicLink()) {
    // Device nodes, fifos and sockets would need mknod(2), which Node does not offer.
    if (top) throw new Errno(95); // EOPNOTSUPP
    return;
  }
  const tmp = tempName(dstName);
  try {
    if (st.isFile()) copyFile(srcDir, name, dstDir, tmp, st, job);
    else copySymlink(srcDir, name, dstDir, tmp, st, job);
    if (existing) fs.renameSync(at(dstDir, tmp), at(dstDir, dstName));
    else fs.linkSync(at(dstDir, tmp), at(dstDir, dstName)); // fails with EEXIST if it appeared meanwhile
  } finally {
    try {
      fs.unlinkSync(at(dstDir, tmp));
    } catch {
      /* renamed away */
    }
  }
}

function main(): number {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job;
  try {
    copyEntry(3, job.srcName, 4, job.dstName, job, true);
    return 0;
  } catch (e) {
    return e instanceof Errno ? e.errno : errnoOf(e);
  }
}

process.stdout.write(JSON.stringify({ errno: main() }) + '\n');
