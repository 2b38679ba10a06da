/**
 * Run inside the booted systemd machine by bench/systemd-host.ts: measures whoever owns
 * org.freedesktop.machine1 there (systemd-machined or berthd) and prints one JSON line.
 *
 *   node dist/bench/systemd-host-inner.js register N     CreateMachine (a systemd scope) + TerminateMachine cycles/s
 *   node dist/bench/systemd-host-inner.js first-call N   berthd stopped, then one Varlink Ping through the socket: ms each
 */
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { connectBus } from '../src/dbus/index.js';

const MANAGER = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' };

async function register(n: number): Promise<object> {
  const bus = await connectBus();
  const once = async (name: string): Promise<void> => {
    const leader = spawn('sleep', ['100000'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => leader.once('exit', () => r()));
    await bus.call({ ...MANAGER, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [name, Buffer.alloc(0), 'bench', 'container', leader.pid!, '', []] });
    await bus.call({ ...MANAGER, member: 'TerminateMachine', signature: 's', body: [name] });
    await exited;
  };
  await once('warmup');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await once(`bench-${i}`);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  bus.close();
  return { cycles: n, seconds: s, perSecond: n / s };
}

function ping(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = net.connect('/run/systemd/machine/io.systemd.Machine');
    c.on('connect', () => c.write('{"method":"io.systemd.service.Ping"}\0'));
    c.on('data', (d) => {
      if (d.includes(0)) {
        c.destroy();
        resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    });
    c.on('error', reject);
  });
}

async function firstCall(n: number): Promise<object> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    execFileSync('systemctl', ['stop', 'berthd.service'], { stdio: 'ignore' });
    // systemd's start rate limit (5 starts in 10 s) would refuse the sixth start in a row
    execFileSync('systemctl', ['reset-failed', 'berthd.service'], { stdio: 'ignore' });
    ms.push(await ping());
  }
  ms.sort((a, b) => a - b);
  return { samples: n, p50: ms[Math.floor(n / 2)], max: ms.at(-1) };
}

const [what, count] = process.argv.slice(2);
const n = Number(count ?? 50);
const r = what === 'register' ? await register(n) : what === 'first-call' ? await firstCall(n) : undefined;
if (!r) {
  process.stderr.write('usage: systemd-host-inner.js register|first-call N\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(r)}\n`);
process.exit(0);
