/**
 * `--network-veth`: a veth pair, `host0` inside the container and `ve-NAME` on the host, with MAC
 * addresses that stay the same across runs. Facts from nspawn: each MAC is siphash24 over the host's
 * machine ID (16 bytes) followed by the machine name, with one fixed key per side; the first six bytes of
 * the little-endian result, marked locally administered and unicast. Names longer than 15 bytes keep 11
 * bytes and get 4 URL-safe base64 characters of another keyed hash (the full name is set as altname).
 */
import fs from 'node:fs';
import { hexKey, siphash24 } from './siphash.js';

const HOST_KEY = hexKey('1a376fc746ec450bada3d53106605db1');
const CONTAINER_KEY = hexKey('c3c4f919b557b21ce6cf1427039ceea2');
const SHORTEN_KEY = hexKey('e190a404a8ef4b518cccc33a9f11fca2');
const IFNAMSIZ = 16;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function hostMachineId(file = '/etc/machine-id'): Buffer {
  const id = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{32}$/.test(id)) throw new Error(`${file} holds no valid machine ID; veth MAC addresses are derived from it`);
  return Buffer.from(id, 'hex');
}

export function deriveMac(machineName: string, side: 'host' | 'container', machineId: Buffer): string {
  const data = Buffer.concat([machineId, Buffer.from(machineName, 'utf8')]);
  const h = siphash24(data, side === 'host' ? HOST_KEY : CONTAINER_KEY);
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(h);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Interface name for the host side; returns the shortened name and, if shortened, the full one. */
export function hostIfName(machineName: string): { name: string; altName?: string } {
  const full = `ve-${machineName}`;
  if (Buffer.byteLength(full) < IFNAMSIZ) return { name: full };
  const h = siphash24(Buffer.from(full, 'utf8'), SHORTEN_KEY);
  const c = (shift: bigint): string => B64URL[Number((h >> shift) & 63n)]!;
  const head = Buffer.from(full, 'utf8').subarray(0, IFNAMSIZ - 5).toString('latin1');
  return { name: head + c(18n) + c(12n) + c(6n) + c(0n), altName: full };
}

export interface Veth { hostName: string; hostIndex: number; hostMac: string; containerMac: string }

/**
 * Create the pair with `ip` and move `host0` into the network namespace of `pid`. The host side gets `alias`
 * (berth-spawn's mark, launch-record.ts) as it is brought up, so a leftover link is known to be berth's.
 */
export async function setupVeth(machineName: string, pid: number, alias: string): Promise<Veth> {
  const mid = hostMachineId();
  const { name, altName } = hostIfName(machineName);
  const hostMac = deriveMac(machineName, 'host', mid);
  const containerMac = deriveMac(machineName, 'container', mid);
  const { execa } = await import('execa'); // only when veth is asked for: keeps the start path light
  await execa('ip', ['link', 'add', name, 'address', hostMac, 'type', 'veth',
    'peer', 'name', 'host0', 'address', containerMac, 'netns', String(pid)]);
  if (altName) await execa('ip', ['link', 'property', 'add', 'dev', name, 'altname', altName], { reject: false });
  await execa('ip', ['link', 'set', name, 'up', 'alias', alias]);
  const hostIndex = Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  return { hostName: name, hostIndex, hostMac, containerMac };
}

/** Remove the host side (the peer goes with it); silent when already gone. */
export async function removeVeth(hostName: string): Promise<void> {
  const { execa } = await import('execa');
  await execa('ip', ['link', 'del', hostName], { reject: false });
}
