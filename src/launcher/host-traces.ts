/**
 * What the host shows of the parts a berth-spawn made, read without disturbing them: whether a lock file is
 * held (from /proc/locks, so looking never takes the lock a starting launcher wants), the mounts below a
 * directory (from /proc/self/mountinfo), the links that carry a given alias, and the berth-spawn scopes
 * in machine.slice.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CgroupHierarchy } from '../domain/cgroup-paths.js';
import { MACHINE_SLICE } from '../domain/unit-names.js';
import { scopeMaker } from '../domain/scope-mark.js';

/** Is some process holding a lock (flock, POSIX or OFD) on this file? False when the file does not exist. */
export function lockHeld(file: string, locksText?: string): boolean {
  let st: fs.Stats;
  try { st = fs.statSync(file); } catch { return false; }
  // /proc/locks names a file by MAJOR:MINOR:INODE, the device numbers in hex.
  const major = ((st.dev >> 8) & 0xfff) | (Math.floor(st.dev / 2 ** 32) & ~0xfff);
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  const key = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  const text = locksText ?? fs.readFileSync('/proc/locks', 'latin1');
  return text.split('\n').some((l) => !l.includes('->') && l.split(/\s+/).includes(key));
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountsBelow(dir: string, mountinfo?: string): string[] {
  const text = mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = unescapeMountPath(f[4]!);
    if (mp === dir || mp.startsWith(`${dir}/`)) out.push(mp);
  }
  return [...new Set(out)].sort((a, b) => b.length - a.length);
}

/** A network link's alias, or undefined when it has none or does not exist. */
export function linkAlias(name: string): string | undefined {
  try {
    const a = fs.readFileSync(`/sys/class/net/${name}/ifalias`, 'utf8').replace(/\n$/, '');
    return a === '' ? undefined : a;
  } catch {
    return undefined;
  }
}

/** Links whose alias starts with `prefix`, with the rest of their alias. */
export function linksWithAliasPrefix(prefix: string): { link: string; rest: string }[] {
  let names: string[];
  try { names = fs.readdirSync('/sys/class/net'); } catch { return []; }
  const out: { link: string; rest: string }[] = [];
  for (const link of names) {
    const a = linkAlias(link);
    if (a?.startsWith(prefix)) out.push({ link, rest: a.slice(prefix.length) });
  }
  return out;
}

/** Undo systemd's unit-name escape (`\xNN` per byte) of a machine name. */
function unitNameUnescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const m = /^\\x([0-9a-f]{2})/.exec(s.slice(i, i + 4));
    if (m) { bytes.push(parseInt(m[1]!, 16)); i += 3; } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Machine names of the scopes in machine.slice, in any hierarchy, that carry exactly the mark `maker`. */
export function markedScopeMachines(hierarchies: readonly CgroupHierarchy[], maker: string): string[] {
  const found = new Set<string>();
  for (const h of hierarchies) {
    let units: string[];
    try { units = fs.readdirSync(path.join(h.root, MACHINE_SLICE)); } catch { continue; }
    for (const u of units) {
      const m = /^machine-(.+)\.scope$/.exec(u);
      if (m && scopeMaker(path.join(h.root, MACHINE_SLICE, u)) === maker) found.add(unitNameUnescape(m[1]!));
    }
  }
  return [...found];
}
