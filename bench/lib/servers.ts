/**
 * The servers under test: berthd started here in a private runtime directory (this checkout's bundle, or
 * a baseline commit's), the real systemd-machined 257 on /run (started through scripts/reference-tools.sh
 * only when nothing serves it yet, and then stopped again at the end; a machined that others started is
 * left running), and machined 262 in a mount namespace of its own (see machined262.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { VarlinkClient } from '../../src/varlink/client.js';
import { DIST, owe, REPO, runtimeDir, waitFor } from './util.js';

/** What berth-activate and the units start: the bundle run from its code cache (see scripts/bundle.mjs). */
export const BERTHD = path.join(DIST, 'bin/berthd.cjs');
export { BERTHD_NODE_OPTIONS } from '../../src/server/node-options.js';
import { BERTHD_NODE_OPTIONS } from '../../src/server/node-options.js';
export const MACHINED_SOCKET = '/run/systemd/machine/io.systemd.Machine';
export const MACHINED_USERDB_SOCKET = '/run/systemd/userdb/io.systemd.Machine';
export const USERDB_SERVICE = 'io.systemd.Machine';

/** Calls one method on a fresh connection and closes it. */
export async function callOnce(socket: string, method: string, params?: object): Promise<Record<string, unknown>> {
  const c = await VarlinkClient.connect(`unix:${socket}`, { timeout: 30_000 });
  try {
    return await c.callRaw(method, params);
  } finally {
    c.close();
  }
}

/** BERTH_BENCH_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`): extra node options for the berthds started here, to profile them. */
function extraNodeArgs(): string[] {
  return (process.env.BERTH_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

export class Berthd {
  readonly socket: string;
  readonly userdbSocket: string;
  private stderr = '';
  private readonly settle = owe(() => this.stop());

  private constructor(
    readonly runtimeDir: string,
    private readonly child: ChildProcess,
  ) {
    this.socket = path.join(runtimeDir, 'systemd/machine/io.systemd.Machine');
    this.userdbSocket = path.join(runtimeDir, 'systemd/userdb', USERDB_SERVICE);
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.length > 64_000) this.stderr = this.stderr.slice(-32_000);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines berthd wrote to stderr (pino JSON at level warn and above). */
  logTail(lines = 5): string {
    return this.stderr.trim().split('\n').slice(-lines).join('\n');
  }

  /** `bundle` is the berthd.mjs to run (a baseline commit's; this checkout's by default). */
  static async start(bundle = BERTHD, extraArgs: string[] = [], env?: NodeJS.ProcessEnv): Promise<Berthd> {
    if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing (npm run build)`);
    const dir = runtimeDir('bn-berthd-');
    const child = spawn(
      process.execPath,
      [...BERTHD_NODE_OPTIONS, ...extraNodeArgs(), bundle, '--runtime-dir', dir, '--log-level', 'warn', '--userdb-service', USERDB_SERVICE, ...extraArgs],
      { stdio: ['ignore', 'ignore', 'pipe'], ...(env ? { env } : {}) },
    );
    const b = new Berthd(dir, child);
    try {
      await waitFor('berthd to answer GetInfo', 20_000, async () => {
        if (!b.alive) throw new Error(`berthd exited (${child.exitCode ?? child.signalCode}): ${b.logTail(10)}`);
        if (!fs.existsSync(b.socket) || !fs.existsSync(b.userdbSocket)) return false;
        try {
          await callOnce(b.socket, 'org.varlink.service.GetInfo');
          return true;
        } catch {
          return false;
        }
      });
    } catch (e) {
      await b.stop();
      throw e;
    }
    return b;
  }

  /** SIGTERM, then SIGKILL after 10 s; removes the runtime directory. */
  async stop(): Promise<void> {
    this.settle();
    if (this.alive) {
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(this.runtimeDir, { recursive: true, force: true });
  }
}

const REFERENCE = path.join(REPO, 'scripts/reference-tools.sh');

/** What a scenario needs of any server it measures berth against. */
export interface Peer {
  /** Column label: `257`, `262`, `base`. */
  readonly label: string;
  readonly socket: string;
  readonly userdbSocket: string;
  /** A machined (the targets apply against it), not a berthd of another commit. */
  readonly machined: boolean;
  /** The server's pid (for CPU and memory figures), when known. */
  pid(): number | undefined;
}

export class Machined implements Peer {
  private constructor(readonly startedHere: boolean) {}

  readonly label = '257';
  readonly machined = true;
  readonly socket = MACHINED_SOCKET;
  readonly userdbSocket = MACHINED_USERDB_SOCKET;

  static async running(): Promise<boolean> {
    const r = await execa('bash', [REFERENCE, 'machined', 'status'], { reject: false });
    return r.exitCode === 0 && /systemd-machined/.test(r.stdout);
  }

  /** Uses the machined already serving /run, or starts one (and remembers to stop it). */
  static async ensure(): Promise<Machined> {
    if (await Machined.running()) return new Machined(false);
    const r = await execa('bash', [REFERENCE, 'machined', 'start'], { reject: false, all: true });
    if (r.exitCode !== 0 || !(await Machined.running())) {
      throw new Error(`cannot start the reference systemd-machined 257: ${r.all?.trim()}`);
    }
    return new Machined(true);
  }

  pid(): number | undefined {
    return machinedPid();
  }

  async product(): Promise<string> {
    const info = await callOnce(this.socket, 'org.varlink.service.GetInfo');
    return `${info.product ?? '?'} ${info.version ?? ''}`.trim();
  }

  async stopIfOurs(): Promise<void> {
    if (this.startedHere) await execa('bash', [REFERENCE, 'machined', 'stop'], { reject: false });
  }
}

/** machined 257's pid (from reference-tools.sh's pid file), for its memory figures; undefined if unknown. */
export function machinedPid(root = ''): number | undefined {
  const file = `${root}/var/tmp/berth-reference${root ? '-sid' : ''}/state/machined.pid`;
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of berthd or a peer, for the CPU-per-call figures. */
export function serverPid(s: Berthd | Peer): number | undefined {
  return s instanceof Berthd ? s.pid : s.pid();
}
