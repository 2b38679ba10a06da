/**
 * What the D-Bus soak scenarios share: a private dbus-daemon configured like a system bus (deny by default,
 * berth's own units/dbus policy included), the methods of berthd's objects read from its introspection,
 * and a seeded generator of D-Bus values of any signature.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseSignature, variant, type DBusType } from '../../src/dbus/index.js';
import type { Connection } from '../../src/dbus/index.js';
import { REPO, within } from './common.js';

export const BUS_NAME = 'org.freedesktop.machine1';
export const MANAGER_PATH = '/org/freedesktop/machine1';
export const MANAGER = 'org.freedesktop.machine1.Manager';
export const MACHINE = 'org.freedesktop.machine1.Machine';
export const IMAGE = 'org.freedesktop.machine1.Image';

export interface SoakBus {
  address: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

/** A dbus-daemon with a system bus's default policy plus berth's units/dbus/org.freedesktop.machine1.conf. */
export async function startSoakBus(): Promise<SoakBus> {
  const dir = fs.mkdtempSync('/var/tmp/berth-soakbus-');
  fs.chmodSync(dir, 0o755);
  const socket = path.join(dir, 'system_bus_socket');
  const config = path.join(dir, 'system.conf');
  fs.writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>${path.join(REPO, 'units/dbus/org.freedesktop.machine1.conf')}</include>
</busconfig>
`,
  );
  const child: ChildProcess = spawn('dbus-daemon', [`--config-file=${config}`, '--print-address', '--nofork'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const address = await within(
    new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!.trim());
      });
      child.once('exit', (code) => reject(new Error(`dbus-daemon exited (${code})`)));
    }),
    10_000,
    'dbus-daemon to print its address',
  );
  return {
    address,
    pid: child.pid!,
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface BusMethod {
  iface: string;
  name: string;
  /** The in-signature. */
  signature: string;
}

/** The methods of an object's machine1 interfaces (and the standard ones), from its Introspect. */
export async function introspectMethods(conn: Connection, objectPath: string): Promise<BusMethod[]> {
  const r = await conn.call({ destination: BUS_NAME, path: objectPath, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' });
  const xml = r.body[0] as string;
  const out: BusMethod[] = [];
  for (const im of xml.matchAll(/<interface name="([^"]+)">([\s\S]*?)<\/interface>/g)) {
    for (const mm of im[2]!.matchAll(/<method name="([^"]+)">([\s\S]*?)<\/method>|<method name="([^"]+)"\/>/g)) {
      const name = mm[1] ?? mm[3]!;
      const args = mm[2] ?? '';
      const signature = [...args.matchAll(/<arg type="([^"]+)"[^>]*direction="in"/g), ...args.matchAll(/<arg type="([^"]+)"(?![^>]*direction=)[^>]*\/>/g)]
        .map((a) => a[1])
        .join('');
      out.push({ iface: im[1]!, name, signature });
    }
  }
  return out;
}

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with --seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const BASIC = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g', 'h'];
const STRINGS = ['', '.host', 'self', 'a/b', '..', 'x'.repeat(300), '\u00e9t\u00e9', '-', 'root', '/', '/etc', '/nonexistent', 'all', 'leader', 'container', 'vm', 'shell', '0', 'a\tb', 'Slice'];
const PROPERTY_NAMES = ['Class', 'Service', 'LeaderPID', 'LeaderPIDFD', 'RootDirectory', 'NetworkInterfaces', 'VSockCID', 'SSHAddress', 'SSHPrivateKeyPath', 'Id', 'Slice', 'Delegate', 'Description', 'Bogus'];

/** A random complete type, at most `depth` deep. */
export function randomType(rng: Rng, depth = 2): string {
  const r = rng.int(10);
  if (depth <= 0 || r < 6) return rng.pick(BASIC);
  if (r === 6) return 'v';
  if (r === 7) return `a${randomType(rng, depth - 1)}`;
  if (r === 8) return `a{${rng.pick(BASIC.filter((b) => b !== 'h'))}${randomType(rng, depth - 1)}}`;
  return `(${randomType(rng, depth - 1)}${rng.int(2) ? randomType(rng, depth - 1) : ''})`;
}

/**
 * A value of type `t`. `names` are strings worth trying (machine and image names); `fd` gives a fresh
 * descriptor for an `h` (the connection closes what it sends).
 */
export function randomValue(rng: Rng, t: DBusType, names: readonly string[], fd: () => number, depth = 0): unknown {
  switch (t.code) {
    case 'y':
      return rng.int(256);
    case 'b':
      return rng.int(2) === 1;
    case 'n':
      return rng.int(65536) - 32768;
    case 'q':
      return rng.int(65536);
    case 'i':
      return rng.pick([0, -1, 1, 9, 15, 18, 64, 2147483647, -2147483648, rng.int(100000)]);
    case 'u':
      return rng.pick([0, 1, 65534, 4294967295, 4194303, 1000000, rng.int(100000)]);
    case 'x':
      return rng.pick([0n, -1n, 9223372036854775807n, -9223372036854775808n, BigInt(rng.int(1 << 30))]);
    case 't':
      return rng.pick([0n, 1n, 18446744073709551615n, BigInt(rng.int(1 << 30))]);
    case 'd':
      return rng.pick([0, -1.5, 1e308, Number.NaN, Number.POSITIVE_INFINITY]);
    case 's':
      return rng.int(3) === 0 ? rng.pick(names) : rng.pick(STRINGS);
    case 'o':
      return rng.pick(['/', '/org/freedesktop/machine1', '/org/freedesktop/machine1/machine/_2ehost', '/org/freedesktop/machine1/machine/self', '/a/b']);
    case 'g':
      return rng.pick(['', 's', 'a{sv}', 'ai']);
    case 'h':
      return fd();
    case 'v': {
      if (depth > 3) return variant('s', 'deep');
      const sig = randomType(rng, 1);
      return variant(sig, randomValue(rng, parseSignature(sig)[0]!, names, fd, depth + 1));
    }
    case 'a': {
      const n = depth > 3 ? 0 : rng.pick([0, 1, 2, 3]);
      if (t.elem.code === 'y') return Buffer.from(Array.from({ length: rng.pick([0, 1, 16, 17]) }, () => rng.int(256)));
      if (t.elem.code === '{') {
        const m = new Map();
        for (let i = 0; i < n; i++) m.set(randomValue(rng, t.elem.key, names, fd, depth + 1), randomValue(rng, t.elem.value, names, fd, depth + 1));
        return m;
      }
      // a(sv): property lists, with the property names berth knows mixed in.
      if (t.elem.code === '(' && t.elem.fields.length === 2 && t.elem.fields[0]!.code === 's' && t.elem.fields[1]!.code === 'v') {
        return Array.from({ length: n }, () => [rng.pick(PROPERTY_NAMES), randomValue(rng, t.elem.code === '(' ? t.elem.fields[1]! : t, names, fd, depth + 1)]);
      }
      return Array.from({ length: n }, () => randomValue(rng, t.elem, names, fd, depth + 1));
    }
    case '(':
      return t.fields.map((f) => randomValue(rng, f, names, fd, depth + 1));
    case '{':
      return [randomValue(rng, t.key, names, fd, depth + 1), randomValue(rng, t.value, names, fd, depth + 1)];
  }
}

/** Values for a whole signature. */
export function randomBody(rng: Rng, signature: string, names: readonly string[], fd: () => number): unknown[] {
  return parseSignature(signature).map((t) => randomValue(rng, t, names, fd));
}
