/**
 * The locks a running container holds for its launcher's life (flock, released by the teardown): one on its
 * machine name, one on its tree (keyed by device and inode), and where they live under RUNTIME/berth.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tryLock } from '../../domain/libc.js';
import { berthRuntimeDir } from '../../domain/runtime-paths.js';
import type { Teardown } from '../teardown.js';
import { ContainerOptionError, type ContainerOptions } from './options.js';

export function machinesDir(runtimeDir: string): string {
  return berthRuntimeDir(runtimeDir, 'machines');
}

/** Hold the machine name for this process's life (flock); throws if another launcher holds it. */
export function lockName(o: ContainerOptions, t: Teardown): void {
  const dir = machinesDir(o.runtimeDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const p = path.join(dir, `${o.name}.lock`);
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  if (!tryLock(fd)) { fs.closeSync(fd); throw new ContainerOptionError(`machine '${o.name}' is already running`); }
  t.add('release the name lock', () => { fs.rmSync(p, { force: true }); fs.closeSync(fd); });
}

/** The lock file of a tree, RUNTIME/berth/tree-locks/DEV-INO. */
export function treeLockPath(root: string, runtimeDir: string): string {
  const st = fs.statSync(root);
  return path.join(berthRuntimeDir(runtimeDir, 'tree-locks'), `${st.dev}-${st.ino}`);
}

/**
 * One machine per tree at a time (nspawn locks its images too): a second launch on the same directory
 * would shift its ownership under the first. The lock is keyed by device and inode, so any path to the
 * tree finds it.
 */
export function lockTree(root: string, name: string, runtimeDir: string, t: Teardown): void {
  const p = treeLockPath(root, runtimeDir);
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  if (!tryLock(fd)) {
    let holder = '';
    try { holder = fs.readFileSync(fd, 'utf8').trim(); } catch { /* unreadable */ }
    fs.closeSync(fd);
    throw new ContainerOptionError(`directory ${root} is in use by ${holder ? `machine '${holder}'` : 'another machine'}`);
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, name, 0);
  t.add('release the tree lock', () => { fs.rmSync(p, { force: true }); fs.closeSync(fd); });
}
