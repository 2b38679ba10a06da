/**
 * Machine leaders for the benchmark: live processes forked by dist/bench/leaders (bench/leaders.c), each
 * optionally in its own user namespace with a distinct uid/gid base, and scope cgroups to put them in.
 * Everything created here is removed by `close()`; the children also die with their parent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { LEADERS } from './loadgen.js';
import { owe, running, sleep, waitFor } from './util.js';

export class LeaderSet {
  private readonly settle = owe(() => this.close());

  private constructor(
    readonly pids: number[],
    private readonly child: ChildProcess,
  ) {}

  /** Forks `n` leaders; with `userns`, leader i maps 0 → base + i*step (65536 ids). */
  static async spawn(n: number, userns?: { base: number; step: number }): Promise<LeaderSet> {
    const args = userns ? ['userns', String(n), String(userns.base), String(userns.step)] : ['plain', String(n)];
    const child = spawn(LEADERS, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pids: number[] = [];
    const rl = readline.createInterface({ input: child.stdout! });
    const ready = await new Promise<boolean>((resolve) => {
      rl.on('line', (line) => {
        if (line === 'ready') resolve(true);
        else pids.push(Number(line));
      });
      child.on('exit', () => resolve(false));
    });
    if (!ready) throw new Error(`leaders ${args.join(' ')} failed: ${stderr.trim() || 'exited early'}`);
    return new LeaderSet(pids, child);
  }

  /** Kills every leader and waits until they are reaped. */
  async close(): Promise<void> {
    this.settle();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
    await waitFor('leaders to be reaped', 30_000, () => this.pids.every((p) => !running(p)), 50);
  }
}

/** cgroup hierarchies a scope must exist in: the v2 root, or both halves of a hybrid host. */
export function hierarchies(): string[] {
  return ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'].filter((h) =>
    fs.existsSync(path.join(h, 'cgroup.procs')),
  );
}

/**
 * Scopes `machine.slice/machine-NAME.scope` created by the benchmark, so that leaders sit in a unit-shaped
 * cgroup as machined 257 requires when no systemd runs as PID 1.
 */
export class Scopes {
  private readonly created: string[] = [];
  private readonly hier = hierarchies();
  private readonly settle = owe(() => this.close());

  constructor() {
    if (this.hier.length === 0) throw new Error('no writable cgroup hierarchy under /sys/fs/cgroup');
  }

  static unit(name: string): string {
    return `machine-${name}.scope`;
  }

  /** Creates the scope for machine NAME in every hierarchy and moves `pid` into it. */
  add(name: string, pid: number): void {
    for (const h of this.hier) {
      const dir = path.join(h, 'machine.slice', Scopes.unit(name));
      fs.mkdirSync(dir, { recursive: true });
      this.created.push(dir);
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), `${pid}\n`);
    }
  }

  /** Removes the scopes; their processes must be gone (a cgroup with members cannot be removed). */
  async close(): Promise<string[]> {
    this.settle();
    const left: string[] = [];
    for (const dir of this.created.splice(0).reverse()) {
      for (let attempt = 0; ; attempt++) {
        try {
          fs.rmdirSync(dir);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (attempt >= 50) {
            left.push(`${dir} (${code})`);
            break;
          }
          await sleep(20);
        }
      }
    }
    return left;
  }
}
