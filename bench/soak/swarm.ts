/**
 * Client swarms for the flood scenario, run as separate processes (and as other users through
 * setpriv) so that berthd sees real peers with their own credentials, and so their sockets do not
 * slow down the process that measures latency. The script is passed with `node -e`, so the user
 * running it needs no access to the repository. Each swarm prints one JSON line when set up, and
 * a final JSON line when its stdin closes, then exits.
 *
 *   connect N   open N connections, ask GetInfo on each; report accepted (answered) and refused
 *   slow N      N connections each writing a GetInfo call one byte per second
 *   noread N    N connections each asking List with more, never reading the reply
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { asUser, ChildLines, type User } from './common.js';

const SCRIPT = String.raw`
import net from 'node:net';
const [mode, socket, nStr] = process.argv.slice(1);
const n = Number(nStr);
const socks = [];
const result = { mode, n, accepted: 0, refused: 0, open: 0, errors: 0, bytes: 0 };
const opened = (s) => new Promise((resolve) => {
  s.once('connect', () => resolve(true));
  s.once('error', () => resolve(false));
});
async function connectMode() {
  const batch = 128;
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, async () => {
      const s = net.connect(socket);
      s.on('error', () => {});
      if (!(await opened(s))) { result.errors++; return; }
      socks.push(s);
      const got = await new Promise((resolve) => {
        let buf = '';
        s.on('data', (d) => { buf += d; if (buf.includes('\0')) resolve(true); });
        s.once('close', () => resolve(false));
        s.write('{"method":"org.varlink.service.GetInfo"}\0');
      });
      if (got) result.accepted++; else result.refused++;
    }));
  }
}
async function slowMode() {
  const msg = Buffer.from('{"method":"org.varlink.service.GetInfo"}\0');
  for (let i = 0; i < n; i++) {
    const s = net.connect(socket);
    s.on('error', () => {});
    if (!(await opened(s))) { result.errors++; continue; }
    s.on('data', () => {});
    s.on('close', () => { s.closedByPeer = true; });
    socks.push(s);
  }
  let pos = 0;
  setInterval(() => {
    for (const s of socks) if (!s.closedByPeer) s.write(msg.subarray(pos % msg.length, (pos % msg.length) + 1));
    pos++;
    result.bytes = pos;
  }, 1000);
}
async function noreadMode() {
  for (let i = 0; i < n; i++) {
    const s = net.connect(socket);
    s.on('error', () => {});
    if (!(await opened(s))) { result.errors++; continue; }
    s.pause();
    s.write('{"method":"io.systemd.Machine.List","more":true}\0');
    socks.push(s);
  }
}
await ({ connect: connectMode, slow: slowMode, noread: noreadMode })[mode]();
result.open = socks.filter((s) => !s.destroyed && !s.closedByPeer).length;
process.stdout.write(JSON.stringify({ phase: 'ready', ...result }) + '\n');
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  result.open = socks.filter((s) => !s.destroyed && !s.closedByPeer && s.readyState === 'open').length;
  process.stdout.write(JSON.stringify({ phase: 'end', ...result }) + '\n');
  process.exit(0);
});
`;

export interface SwarmReport {
  phase: string;
  mode: string;
  n: number;
  accepted: number;
  refused: number;
  open: number;
  errors: number;
  bytes: number;
}

export class Swarm {
  private readonly out: ChildLines;
  private constructor(readonly child: ChildProcess) {
    this.out = new ChildLines(child);
  }

  static start(mode: 'connect' | 'slow' | 'noread', socket: string, n: number, user?: User): Swarm {
    const argv = [...(user ? asUser(user) : []), process.execPath, '--input-type=module', '-e', SCRIPT, mode, socket, String(n)];
    return new Swarm(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  async report(timeoutMs = 60_000): Promise<SwarmReport> {
    return JSON.parse(await this.out.next(timeoutMs, 'a swarm report', 'swarm exited without a report')) as SwarmReport;
  }

  /** Closes stdin and returns the final report. */
  async finish(): Promise<SwarmReport | undefined> {
    this.child.stdin!.end();
    try {
      return await this.report(15_000);
    } catch {
      this.child.kill('SIGKILL');
      return undefined;
    }
  }
}
