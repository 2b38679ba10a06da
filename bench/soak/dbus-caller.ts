/**
 * Makes D-Bus calls to berthd one after another, as whatever user runs it (the D-Bus permission matrix
 * starts it as root, as the machines' owner and as nobody), and prints one JSON line: its uid and each
 * call's reply ("ok") or error name. Calls come as JSON from the file argv[3]; a body item may be
 * {"$v":[SIG,VALUE]} (a variant), {"$ay":HEX}, {"$t":"N"} (a 64-bit number) or {"$fd":PATH} (a descriptor).
 */
import fs from 'node:fs';
import { closeFd, connectBus, DBusError, variant } from '../../src/dbus/index.js';

export interface BusCall {
  path: string;
  iface: string;
  member: string;
  signature: string;
  body: unknown[];
}

export interface CallerOutput {
  uid: number;
  replies: { ok?: true; error?: string; message?: string }[];
}

function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('$v' in o) {
      const [sig, value] = o.$v as [string, unknown];
      return variant(sig, decode(value));
    }
    if ('$ay' in o) return Buffer.from(o.$ay as string, 'hex');
    if ('$t' in o) return BigInt(o.$t as string);
    if ('$fd' in o) return fs.openSync(o.$fd as string, 'r');
  }
  return v;
}

async function main(): Promise<void> {
  const [address, file] = process.argv.slice(2);
  const calls = JSON.parse(fs.readFileSync(file!, 'utf8')) as BusCall[];
  const conn = await connectBus({ address: address! });
  const out: CallerOutput = { uid: process.getuid!(), replies: [] };
  for (const c of calls) {
    try {
      const r = await conn.call({ destination: 'org.freedesktop.machine1', path: c.path, interface: c.iface, member: c.member, signature: c.signature, body: decode(c.body) as unknown[], timeoutMs: 15_000 });
      for (const f of r.fds) closeFd(f);
      out.replies.push({ ok: true });
    } catch (e) {
      out.replies.push(e instanceof DBusError ? { error: e.type, message: e.message } : { error: `client.${(e as Error).message}` });
    }
  }
  conn.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`dbus-caller: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
