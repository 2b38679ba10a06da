/**
 * One batch of fuzzed D-Bus calls to berthd, run as its own process so that it can run as another user
 * (the soak starts it with setpriv as nobody, or as root). Reads a JSON job from argv[2], prints one JSON
 * line of counts. Each call is one of: the method's signature with random values ("right"), a random other
 * signature ("wrong"), the signature cut short ("short"), or, on a raw socket, a message whose body is cut
 * off or invalid ("raw": the bus must drop an invalid one's sender; berthd never sees either).
 *
 * Safety as root (`safe`): only the methods the job lists get right-signature calls; a registration's
 * leader is always one of the job's sacrificial sleepers, and a Manager method acting on a machine by name
 * only ever names one of `rootNames` (machines this fuzzer made), never a kept machine or `.host`.
 */
import fs from 'node:fs';
import net from 'node:net';
import { connectBus, createMessage, DBusError, isValidSignature, encodeMessage, MessageType, variant, closeFd, type Connection } from '../../src/dbus/index.js';
import { BUS_NAME, MANAGER, MANAGER_PATH, randomBody, randomType, Rng, type BusMethod } from './dbus-bus.js';

export interface FuzzJob {
  address: string;
  socketPath: string;
  seed: number;
  count: number;
  /** Objects and their methods. */
  targets: { path: string; methods: BusMethod[] }[];
  names: string[];
  /** Root mode: the only methods called with their right signature. */
  safe?: string[];
  rootNames?: string[];
  sleepers?: number[];
}

export interface FuzzCounts {
  uid: number;
  calls: number;
  right: number;
  wrong: number;
  short: number;
  /** Whole but invalid messages, and how many of their senders the bus dropped. */
  raw: number;
  rawDropped: number;
  /** Messages cut short. */
  rawPartial: number;
  /** Replies by error name (and "ok"). */
  replies: Record<string, number>;
  noReply: number;
  examples: Record<string, string>;
}

const REGISTER = /^(Create|Register)Machine/;

/**
 * Sends Hello and then `data` on a connection of its own. With `expectDrop` (a message that is whole but
 * invalid) resolves whether the bus hung up on it within 5 s; otherwise (a message cut short, which the bus
 * waits for the rest of) hangs up itself after 200 ms and resolves true.
 */
function rawSend(socketPath: string, uid: number, data: Buffer, expectDrop: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    let inbox = '';
    let sent = false;
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 5000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve(sent);
    });
    s.on('connect', () => s.write(Buffer.concat([Buffer.from([0]), Buffer.from(`AUTH EXTERNAL ${Buffer.from(String(uid)).toString('hex')}\r\n`)])));
    s.on('data', (d: Buffer) => {
      inbox += d.toString('latin1');
      if (!sent && inbox.includes('OK ')) {
        s.write('BEGIN\r\n');
        const hello = createMessage({ type: MessageType.MethodCall, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello', signature: '', body: [] });
        hello.serial = 1;
        s.write(encodeMessage(hello).data);
        s.write(data);
        sent = true;
        if (!expectDrop) setTimeout(() => s.destroy(), 200);
      }
    });
  });
}

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as FuzzJob;
  const rng = new Rng(job.seed);
  const uid = process.getuid!();
  const counts: FuzzCounts = { uid, calls: 0, right: 0, wrong: 0, short: 0, raw: 0, rawDropped: 0, rawPartial: 0, replies: {}, noReply: 0, examples: {} };
  const conn: Connection = await connectBus({ address: job.address });
  const fd = () => fs.openSync('/dev/null', 'r');
  const note = (key: string, what: string) => {
    counts.replies[key] = (counts.replies[key] ?? 0) + 1;
    if (!counts.examples[key]) counts.examples[key] = what;
  };

  const one = async () => {
    const target = rng.pick(job.targets);
    const m = rng.pick(target.methods);
    const kind = rng.pick(['right', 'right', 'right', 'wrong', 'short', 'raw'] as const);
    const safe = !job.safe || job.safe.includes(`${m.iface}.${m.name}`);
    let signature = m.signature;
    let body: unknown[];
    if (kind === 'right' && safe) {
      body = randomBody(rng, signature, job.names, fd);
      if (job.safe && m.iface === MANAGER && target.path === MANAGER_PATH) {
        if (REGISTER.test(m.name)) {
          if (m.name.endsWith('Ex')) {
            const props = (body[1] as [string, unknown][]).filter(([k]) => k !== 'LeaderPID' && k !== 'LeaderPIDFD');
            props.push(['LeaderPID', variant('u', rng.pick(job.sleepers!))]);
            body[1] = props;
          } else body[4] = rng.pick(job.sleepers!);
        } else if (signature.startsWith('s') && !/^(Get|Map|List)/.test(m.name)) body[0] = rng.pick(job.rootNames!);
      }
      counts.right++;
    } else if (kind === 'short' && signature.length > 0 && safe) {
      // A prefix of complete types: drop the last one.
      let cut = '';
      for (let n = signature.length - 1; n > 0 && !cut; n--) if (isValidSignature(signature.slice(0, n))) cut = signature.slice(0, n);
      signature = cut;
      body = randomBody(rng, signature, job.names, fd);
      counts.short++;
    } else if (kind === 'raw') {
      const msg = createMessage({ type: MessageType.MethodCall, destination: BUS_NAME, path: target.path, interface: m.iface, member: m.name, signature: 's', body: ['x'.repeat(rng.int(40))] });
      msg.serial = 2;
      const data = Buffer.from(encodeMessage(msg).data);
      // Either whole but invalid (a string length beyond the body: the bus must drop the sender) or cut
      // short of its declared length (the bus waits for the rest; the sender hangs up).
      const invalid = rng.int(2) === 1;
      if (invalid) data.writeUInt32LE(1 << 20, data.length - (msg.body[0] as string).length - 5);
      else counts.rawPartial++;
      const dropped = await rawSend(job.socketPath, uid, invalid ? data : data.subarray(0, data.length - 1 - rng.int(8)), invalid);
      if (invalid) {
        counts.raw++;
        if (dropped) counts.rawDropped++;
      }
      return;
    } else {
      do signature = Array.from({ length: rng.int(4) }, () => randomType(rng)).join('');
      while (signature === m.signature);
      body = randomBody(rng, signature, job.names, fd);
      counts.wrong++;
    }
    counts.calls++;
    try {
      const r = await conn.call({ destination: BUS_NAME, path: target.path, interface: m.iface, member: m.name, signature, body, timeoutMs: 15_000 });
      for (const f of r.fds) closeFd(f);
      note('ok', `${m.name}(${signature})`);
    } catch (e) {
      if (e instanceof DBusError && e.type === 'org.freedesktop.DBus.Error.NoReply') counts.noReply++;
      note(e instanceof DBusError ? e.type : `client:${(e as Error).message}`, `${m.name}(${signature}) -> ${(e as Error).message}`.slice(0, 300));
    }
  };
  let left = job.count;
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (left-- > 0) await one();
    }),
  );
  conn.close();
  process.stdout.write(JSON.stringify(counts) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`dbus-fuzz-client: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
