/**
 * UID ranges for user-namespaced containers: parsing `--private-users=`, picking a base the way
 * systemd-nspawn does, and leasing it so that no two machines (nor a host user) ever share one.
 *
 * Facts reproduced from nspawn: candidates are 64K-aligned bases in [0x00080000, 0x6FFF0000]; the first
 * candidate is the base the tree is already shifted to (if any), then siphash24 of the machine name with a
 * fixed key (low 32 bits, modulo the window size, plus the window start, rounded down to 64K), then random
 * bases; at most 100 tries.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { berthRuntimeDir } from '../domain/runtime-paths.js';
import { hexKey, siphash24 } from './siphash.js';
import { tryLock } from '../domain/libc.js';

export const UID_RANGE_DEFAULT = 0x10000;
export const CONTAINER_UID_BASE_MIN = 0x00080000;
export const CONTAINER_UID_BASE_MAX = 0x6fff0000;
const PICK_KEY = hexKey('e1 56 e0 f0 4a f0 41 af 96 41 cf 41 33 94 ff 72');
const PICK_TRIES = 100;

export type PrivateUsers =
  | { mode: 'no' }
  | { mode: 'pick' }
  | { mode: 'yes' } // base taken from the owner of the root directory
  | { mode: 'identity' } // 0…65535 mapped onto themselves
  | { mode: 'fixed'; shift: number; range: number };

export class UidRangeError extends Error {
  override name = 'UidRangeError';
}

/** Parse a `--private-users=` value as systemd-nspawn accepts it. */
export function parsePrivateUsers(value: string): PrivateUsers {
  const v = value.trim();
  if (v === 'pick') return { mode: 'pick' };
  if (v === 'identity') return { mode: 'identity' };
  if (['yes', 'true', 'on', '1'].includes(v)) return { mode: 'yes' };
  if (['no', 'false', 'off', '0'].includes(v)) return { mode: 'no' };
  const m = /^(\d+)(?::(\d+))?$/.exec(v);
  if (!m) throw new UidRangeError(`invalid --private-users= value '${value}': expected pick, yes, no, identity or SHIFT[:RANGE]`);
  const shift = Number(m[1]);
  const range = m[2] === undefined ? UID_RANGE_DEFAULT : Number(m[2]);
  if (!Number.isSafeInteger(shift) || shift > 0xfffffffe) throw new UidRangeError(`UID shift out of range: ${m[1]}`);
  if (range <= 0 || range > 0x100000000 - shift - 1) throw new UidRangeError(`UID range size out of range: ${m[2]}`);
  return { mode: 'fixed', shift, range };
}

/** nspawn's hash candidate for a machine name (before checking whether it is free). */
export function hashedBase(machineName: string): number {
  const h = Number(siphash24(Buffer.from(machineName, 'utf8'), PICK_KEY) & 0xffffffffn);
  const c = (h % (CONTAINER_UID_BASE_MAX - CONTAINER_UID_BASE_MIN)) + CONTAINER_UID_BASE_MIN;
  return (c & 0xffff0000) >>> 0;
}

export function randomBase(): number {
  const c = randomInt(CONTAINER_UID_BASE_MIN, CONTAINER_UID_BASE_MAX);
  return (c & 0xffff0000) >>> 0;
}

/** The candidates in the order nspawn tries them (the random tail is drawn lazily). */
export function* candidates(machineName: string, treeBase: number, random: () => number = randomBase): Generator<number> {
  let n = 0;
  if (treeBase !== 0 && n++ < PICK_TRIES) yield treeBase;
  if (n++ < PICK_TRIES) yield hashedBase(machineName);
  while (n++ < PICK_TRIES) yield random();
}

export interface Range { start: number; size: number; owner: string }

export function overlaps(a: { start: number; size: number }, b: { start: number; size: number }): boolean {
  return a.start < b.start + b.size && b.start < a.start + a.size;
}

/** Parse a /proc/PID/uid_map; the identity map of the initial namespace yields nothing. */
export function parseIdMap(text: string): { inside: number; outside: number; count: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [inside, outside, count] = f.map(Number) as [number, number, number];
    if (inside === 0 && outside === 0 && count === 4294967295) continue;
    out.push({ inside, outside, count });
  }
  return out;
}

/** Host UID ranges in use by any user namespace on this host (running machines, nspawn, rootless tools). */
export function rangesInUse(procRoot = '/proc'): Range[] {
  const seen = new Map<string, Range>();
  const namespaces = new Set<string>();
  let own = '';
  try { own = fs.readlinkSync(`${procRoot}/self/ns/user`); } catch { /* no procfs? */ }
  let entries: string[];
  try { entries = fs.readdirSync(procRoot); } catch { return []; }
  for (const e of entries) {
    if (e.charCodeAt(0) > 57 || e.charCodeAt(0) < 48) continue;
    // Read each user namespace's map once; the host's own namespace maps nothing.
    let ns: string;
    try { ns = fs.readlinkSync(`${procRoot}/${e}/ns/user`); } catch { continue; }
    if (ns === own || namespaces.has(ns)) continue;
    namespaces.add(ns);
    let text: string;
    try { text = fs.readFileSync(`${procRoot}/${e}/uid_map`, 'utf8'); } catch { continue; }
    for (const m of parseIdMap(text)) {
      const key = `${m.outside}:${m.count}`;
      if (!seen.has(key)) seen.set(key, { start: m.outside, size: m.count, owner: `process ${e}` });
    }
  }
  return [...seen.values()];
}

/** UIDs and GIDs named in /etc/passwd and /etc/group. */
export function hostIds(passwd = '/etc/passwd', group = '/etc/group'): { uids: number[]; gids: number[] } {
  const col3 = (file: string): number[] => {
    try {
      return fs.readFileSync(file, 'utf8').split('\n')
        .map((l) => l.split(':')[2]).filter((x): x is string => !!x && /^\d+$/.test(x)).map(Number);
    } catch { return []; }
  };
  return { uids: col3(passwd), gids: col3(group) };
}

/** A held range: the lease file stays locked (flock) until release() or the process ends. */
export interface UidLease {
  base: number;
  range: number;
  release(): void;
}

function leaseDir(runtimeDir: string): string {
  return berthRuntimeDir(runtimeDir, 'uid-leases');
}

/** Ranges leased by other live launchers; stale lease files (lock free) are removed. */
export function leasedRanges(runtimeDir: string): Range[] {
  const dir = leaseDir(runtimeDir);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const out: Range[] = [];
  for (const n of names) {
    const p = path.join(dir, n);
    let fd: number;
    try { fd = fs.openSync(p, 'r'); } catch { continue; }
    try {
      if (tryLock(fd)) { fs.rmSync(p, { force: true }); continue; }
      const [start, size, owner] = fs.readFileSync(fd, 'utf8').trim().split(/\s+/);
      if (start && size) out.push({ start: Number(start), size: Number(size), owner: `machine ${owner ?? '?'}` });
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}

function takeLease(runtimeDir: string, base: number, range: number, owner: string): UidLease | undefined {
  const dir = leaseDir(runtimeDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const p = path.join(dir, String(base));
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  if (!tryLock(fd)) { fs.closeSync(fd); return undefined; }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${base} ${range} ${owner}\n`, 0);
  let released = false;
  return {
    base, range,
    release() {
      if (released) return;
      released = true;
      try { fs.rmSync(p, { force: true }); } finally { fs.closeSync(fd); }
    },
  };
}

/** The base a tree is already shifted to (nspawn: owner of the root directory, rounded to 64K). */
export function treeBase(root: string): number {
  const st = fs.statSync(root);
  const u = (st.uid & 0xffff0000) >>> 0;
  const g = (st.gid & 0xffff0000) >>> 0;
  if (u !== g) throw new UidRangeError(`UID and GID base of ${root} differ (${u} vs ${g}); refusing to guess its range`);
  return u;
}

export interface AllocateOptions {
  machineName: string;
  root: string;
  spec: PrivateUsers;
  runtimeDir: string;
  /** For tests: where to look for users and namespaces. */
  passwdFile?: string;
  groupFile?: string;
  procRoot?: string;
  random?: () => number;
}

/** Choose and lease a range; undefined for `--private-users=no`. */
export function allocateUidRange(o: AllocateOptions): UidLease | undefined {
  if (o.spec.mode === 'no') return undefined;
  const taken = [...rangesInUse(o.procRoot), ...leasedRanges(o.runtimeDir)];
  const ids = hostIds(o.passwdFile, o.groupFile);
  const conflict = (start: number, size: number): string | undefined => {
    const hit = taken.find((r) => overlaps(r, { start, size }));
    if (hit) return `overlaps ${hit.start}…${hit.start + hit.size - 1} used by ${hit.owner}`;
    const u = ids.uids.find((x) => x >= start && x < start + size);
    if (u !== undefined) return `contains host user ${u} from /etc/passwd`;
    const g = ids.gids.find((x) => x >= start && x < start + size);
    if (g !== undefined) return `contains host group ${g} from /etc/group`;
    return undefined;
  };

  if (o.spec.mode !== 'pick') {
    const [base, range] =
      o.spec.mode === 'fixed' ? [o.spec.shift, o.spec.range]
      : o.spec.mode === 'identity' ? [0, UID_RANGE_DEFAULT]
      : [treeBase(o.root), UID_RANGE_DEFAULT];
    // A map onto the host's own low IDs (identity, or yes on an unshifted tree) shares IDs with the host on purpose.
    if (base !== 0) {
      const why = conflict(base, range);
      if (why) throw new UidRangeError(`UID range ${base}…${base + range - 1} ${why}`);
    }
    const lease = takeLease(o.runtimeDir, base, range, o.machineName);
    if (!lease) throw new UidRangeError(`UID range at ${base} is leased by another machine`);
    return lease;
  }

  let tb = 0;
  try { tb = treeBase(o.root); } catch { tb = 0; }
  if (tb < CONTAINER_UID_BASE_MIN || tb > CONTAINER_UID_BASE_MAX) tb = 0;
  for (const c of candidates(o.machineName, tb, o.random)) {
    if (c < CONTAINER_UID_BASE_MIN || c > CONTAINER_UID_BASE_MAX || (c & 0xffff) !== 0) continue;
    if (conflict(c, UID_RANGE_DEFAULT)) continue;
    const lease = takeLease(o.runtimeDir, c, UID_RANGE_DEFAULT, o.machineName);
    if (lease) return lease;
  }
  throw new UidRangeError(`no free UID range found for '${o.machineName}' after ${PICK_TRIES} candidates`);
}
