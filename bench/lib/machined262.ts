/**
 * The real systemd-machined 262 beside 257 in the same bench run. Both serve the fixed path
 * /run/systemd/machine/io.systemd.Machine, so 262 runs in a mount namespace of its own (fresh tmpfs over
 * /run/systemd, /run/dbus and its state folder, with a dbus-daemon of its own) and is reached through the
 * holder process's root, /proc/HOLDER/root/run/systemd/…, which the kernel resolves in that namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import path from 'node:path';
import { machinedPid, MACHINED_SOCKET, MACHINED_USERDB_SOCKET, type Peer } from './servers.js';
import { owe, REPO } from './util.js';

const REFERENCE = path.join(REPO, 'scripts/reference-tools.sh');
const STATE = '/var/tmp/berth-reference-sid/state';

const INNER = `set -e
mkdir -p /run/dbus ${STATE}
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/dbus
mount -t tmpfs tmpfs ${STATE}
bash "$1" machined start >&2
echo ready
exec sleep infinity`;

export class Machined262 implements Peer {
  readonly label = '262';
  readonly machined = true;
  private readonly settle = owe(() => this.stop());

  private constructor(private readonly holder: ChildProcess) {}

  get root(): string {
    return `/proc/${this.holder.pid}/root`;
  }

  get socket(): string {
    return this.root + MACHINED_SOCKET;
  }

  get userdbSocket(): string {
    return this.root + MACHINED_USERDB_SOCKET;
  }

  /** machined 262's pid, for its memory figures. */
  pid(): number | undefined {
    return machinedPid(this.root);
  }

  static async start(): Promise<Machined262> {
    const env: NodeJS.ProcessEnv = { ...process.env, BERTH_REFERENCE_SUITE: 'sid' };
    delete env.BERTH_REFERENCE_ROOT;
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'bash', '-c', INNER, 'machined262', REFERENCE], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let err = '';
    holder.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const m = new Machined262(holder);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`machined 262 did not start within 180 s: ${err.trim()}`)), 180_000);
        holder.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
        holder.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`machined 262 did not start (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`));
        });
      });
    } catch (e) {
      await m.stop();
      throw e;
    }
    return m;
  }

  /** Stops machined 262 and its dbus-daemon inside the namespace, then the holder (the namespace goes with them). */
  async stop(): Promise<void> {
    this.settle();
    const pid = this.holder.pid;
    if (pid && this.holder.exitCode === null && this.holder.signalCode === null) {
      await execa('nsenter', ['-t', String(pid), '-m', 'bash', REFERENCE, 'machined', 'stop'], {
        reject: false,
        env: { ...process.env, BERTH_REFERENCE_SUITE: 'sid' },
      });
      const exited = new Promise<void>((r) => this.holder.once('exit', () => r()));
      this.holder.kill('SIGTERM');
      await exited;
    }
  }
}
