/**
 * What a container launch checks in its tree before anything is created: the directory exists and is not the
 * host's root, --boot finds an init, bind sources exist and targets stay inside, and no mount point leads out
 * of the tree through a symlink. Also which program PID 1 runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isValidMachineName, machineNameRefusal } from '../../domain/machine-name.js';
import { ContainerOptionError, type ContainerOptions } from './options.js';

const INIT_CANDIDATES = ['/usr/lib/systemd/systemd', '/lib/systemd/systemd', '/sbin/init'];

function existsInTree(root: string, p: string): boolean {
  try { fs.lstatSync(path.join(root, p)); return true; } catch { return false; }
}

/** Checks that need nothing created; each failure names what is wrong. Returns the tree's real path. */
export function checkOptions(o: ContainerOptions): string {
  if (!isValidMachineName(o.name)) throw new ContainerOptionError(machineNameRefusal(o.name));
  let st: fs.Stats;
  try { st = fs.statSync(o.directory); } catch { throw new ContainerOptionError(`directory ${o.directory} does not exist`); }
  if (!st.isDirectory()) throw new ContainerOptionError(`${o.directory} is not a directory`);
  const root = fs.realpathSync(o.directory);
  if (root === '/') throw new ContainerOptionError('refusing to use the host\'s root directory as a container');
  if (o.boot && !INIT_CANDIDATES.some((p) => existsInTree(root, p))) {
    throw new ContainerOptionError(`--boot: no init in ${root} (looked for ${INIT_CANDIDATES.join(', ')})`);
  }
  for (const b of o.binds) {
    if (!fs.existsSync(b.source)) throw new ContainerOptionError(`bind source ${b.source} does not exist`);
    if (!b.target.startsWith('/') || b.target.split('/').includes('..')) throw new ContainerOptionError(`bind target ${b.target} must be an absolute path without '..'`);
  }
  // Stage 0 creates mount points as the host's root: none of them may lead out of the tree through a symlink.
  for (const target of ['/proc', '/sys', '/dev', '/run', '/tmp', ...o.binds.map((b) => b.target)]) {
    const bad = symlinkOnPath(root, target);
    if (bad) throw new ContainerOptionError(`${bad} in ${root} is a symlink; refusing to mount on ${target} through it`);
  }
  return root;
}

/** The first existing component of `target` (inside `root`) that is a symlink, if any. */
function symlinkOnPath(root: string, target: string): string | undefined {
  let cur = root;
  for (const part of target.split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    let st: fs.Stats;
    try { st = fs.lstatSync(cur); } catch { return undefined; } // missing: created later, below a checked parent
    if (st.isSymbolicLink()) return `/${path.relative(root, cur)}`;
  }
  return undefined;
}

export function initArgv(root: string, o: ContainerOptions): string[] {
  if (o.boot) return [INIT_CANDIDATES.find((p) => existsInTree(root, p))!, ...o.command];
  return o.command.length ? o.command : ['/bin/sh'];
}
