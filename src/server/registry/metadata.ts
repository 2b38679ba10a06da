// What List reports with acquireMetadata: a machine's network addresses, its os-release and its UID shift,
// read from the outside through the leader's /proc entries (and `nsenter` + `ip` for a container's network
// namespace). Each returns a Result whose error the API maps: NoPrivateNetworking, NotAvailable, NoUIDShift
// or an errno.

import fs from 'node:fs';
import { readFileInRoot } from './machine-files.js';
import { Errno, fail, machineRoot, ok, type Machine, type Result } from './machine.js';

export interface MachineAddress {
  /** Omitted for containers (their interfaces are numbered in their own namespace). */
  ifindex?: number;
  /** AF_INET (2) or AF_INET6 (10). */
  family: number;
  address: number[];
}

const AF_INET = 2;
const AF_INET6 = 10;

function nsInode(pid: number | 'self', ns: string): number | undefined {
  try {
    return fs.statSync(`/proc/${pid}/ns/${ns}`).ino;
  } catch {
    return undefined;
  }
}

function ipBytes(family: number, text: string): number[] | undefined {
  if (family === AF_INET) {
    const parts = text.split('.').map(Number);
    return parts.length === 4 && parts.every((n) => Number.isInteger(n) && n >= 0 && n < 256) ? parts : undefined;
  }
  // Expand `::` and any embedded IPv4 tail.
  let t = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  let tail: number[] = [];
  if (v4) {
    const b = ipBytes(AF_INET, v4[1]!);
    if (!b) return undefined;
    tail = b;
    t = t.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = t.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const missing = 8 - h.length - r.length;
  if (missing < 0 || (rest === undefined && missing !== 0)) return undefined;
  const groups = [...h, ...Array(missing).fill('0'), ...r].map((g) => parseInt(g, 16));
  if (groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

interface IpAddrJson {
  ifindex: number;
  addr_info?: { family: string; local: string; scope: string }[];
}

const SCOPE_ORDER: Record<string, number> = { global: 0, site: 200, link: 253, host: 254 };

/** Addresses of the namespace `ip` runs in: lowest scope first, IPv4 before IPv6, then interface, then bytes. */
async function listAddresses(argvPrefix: string[], withIfindex: boolean): Promise<Result<MachineAddress[]>> {
  let out: string;
  try {
    const argv = [...argvPrefix, 'ip', '-j', 'address', 'show'];
    // Loaded on first use: execa is large, and berthd's cold start (socket activation) should not pay for it.
    const { execa } = await import('execa');
    out = (await execa(argv[0]!, argv.slice(1), { timeout: 5000 })).stdout;
  } catch {
    return fail({ errno: Errno.EIO });
  }
  let parsed: IpAddrJson[];
  try {
    parsed = JSON.parse(out) as IpAddrJson[];
  } catch {
    return fail({ errno: Errno.EIO });
  }
  const rows: { scope: number; family: number; ifindex: number; address: number[] }[] = [];
  for (const link of parsed) {
    for (const a of link.addr_info ?? []) {
      if (a.scope === 'host' || a.scope === 'nowhere') continue;
      const family = a.family === 'inet' ? AF_INET : a.family === 'inet6' ? AF_INET6 : 0;
      if (!family) continue;
      const address = ipBytes(family, a.local);
      if (!address) continue;
      rows.push({ scope: SCOPE_ORDER[a.scope] ?? 0, family, ifindex: link.ifindex, address });
    }
  }
  rows.sort((x, y) => x.scope - y.scope || x.family - y.family || x.ifindex - y.ifindex || cmpBytes(x.address, y.address));
  return ok(rows.map((r) => ({ ...(withIfindex ? { ifindex: r.ifindex } : {}), family: r.family, address: r.address })));
}

function cmpBytes(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export async function machineAddresses(m: Machine): Promise<Result<MachineAddress[]>> {
  if (m.class === 'host') return listAddresses([], true);
  if (m.class !== 'container') return fail({ error: 'io.systemd.Machine.NotAvailable' });
  const theirs = nsInode(m.leader.pid, 'net');
  if (theirs === undefined) return fail({ errno: Errno.ESRCH });
  if (theirs === nsInode('self', 'net')) return fail({ error: 'io.systemd.Machine.NoPrivateNetworking' });
  return listAddresses(['nsenter', `--target=${m.leader.pid}`, '--net'], false);
}

/** Parse an os-release file into `KEY=VALUE` strings with the quoting removed, in file order. */
export function parseOsRelease(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    let v = line.slice(eq + 1);
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0]!)) {
      const q = v[0];
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\(["\\`$])/g, '$1');
    }
    out.push(`${key}=${v}`);
  }
  return out;
}

export function machineOsRelease(m: Machine): Result<string[]> {
  if (m.class === 'vm') return fail({ error: 'io.systemd.Machine.NotAvailable' });
  // Resolved inside the machine's root: an os-release that is a symlink to /etc/shadow must lead to
  // the machine's file of that name, not the host's (anyone may List with metadata).
  const root = machineRoot(m);
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      return ok(parseOsRelease(readFileInRoot(root, p)));
    } catch (e) {
      const n = Math.abs((e as { errno?: number }).errno ?? Errno.EIO);
      if (n !== Errno.ENOENT) return fail({ errno: n });
    }
  }
  return fail({ errno: Errno.ENOENT });
}

/** The host UID the container's UID 0 maps to, if its user namespace is one plain shifted range. */
export function machineUidShift(m: Machine): Result<number> {
  if (m.class === 'host') return ok(0);
  if (m.class === 'vm') return fail({ error: 'io.systemd.Machine.NotAvailable' });
  const read = (f: string) => {
    try {
      return fs.readFileSync(`/proc/${m.leader.pid}/${f}`, 'latin1');
    } catch {
      return undefined;
    }
  };
  const uidMap = read('uid_map');
  if (uidMap === undefined) return ok(0);
  const lines = uidMap.split('\n').map((l) => l.trim()).filter((l) => l);
  const noShift = fail<number>({ error: 'io.systemd.Machine.NoUIDShift' });
  if (lines.length !== 1) return noShift;
  const [inside, outside, count] = lines[0]!.split(/\s+/).map(Number) as [number, number, number];
  if (inside !== 0 || !(count >= 65534)) return noShift;
  const gidMap = read('gid_map');
  if (gidMap === undefined || gidMap.split('\n').map((l) => l.trim()).filter((l) => l).join('\n') !== lines[0]) return noShift;
  return ok(outside);
}
