/**
 * A socket activator for hosts without a service manager: it holds listening sockets, and when
 * a connection waits and the service is not running, starts the service with the sockets
 * handed over (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), as systemd's socket units do. The
 * activator never accepts a connection itself, so nothing is lost while the service restarts,
 * exits when idle, or is killed: connections queue in the kernel until the next instance takes
 * the sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, unlinkSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import { closeFd, listenPath, waitReadable } from './peer.js';

export interface ActivatorSocket {
  path: string;
  /** The LISTEN_FDNAMES entry. */
  name: string;
  mode?: number;
}

export interface ActivatorOptions {
  sockets: ActivatorSocket[];
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Minimum time between two starts after a quick failure (default 1 s). */
  restartDelayMs?: number;
}

/** Events: 'start' (pid), 'exit' (code, signal). */
export class Activator extends EventEmitter {
  private readonly fds: number[] = [];
  private child?: ChildProcess;
  private stopped = false;
  private lastStart = 0;

  constructor(private readonly options: ActivatorOptions) {
    super();
  }

  get running(): ChildProcess | undefined {
    return this.child;
  }

  /** Binds every socket. */
  bind(): void {
    for (const s of this.options.sockets) {
      mkdirSync(dirname(s.path), { recursive: true, mode: 0o755 });
      try {
        if (lstatSync(s.path).isSocket()) unlinkSync(s.path);
      } catch {
        // nothing there
      }
      this.fds.push(listenPath(s.path, s.mode ?? 0o666));
    }
  }

  /** Serves until stop(): waits for a connection, runs the service, waits for it to exit. */
  async run(): Promise<void> {
    while (!this.stopped) {
      const ready = await waitReadable(this.fds, 500);
      if (this.stopped) break;
      if (ready.length === 0) continue;
      const wait = this.lastStart + (this.options.restartDelayMs ?? 1000) - Date.now();
      if (wait > 0 && Date.now() - this.lastStart < 2000) await new Promise((r) => setTimeout(r, wait));
      await this.startOnce();
    }
  }

  private startOnce(): Promise<void> {
    this.lastStart = Date.now();
    const names = this.options.sockets.map((s) => s.name).join(':');
    const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', this.options.command, ...this.options.args], {
      stdio: ['ignore', 'inherit', 'inherit', ...this.fds],
      env: { ...(this.options.env ?? process.env), LISTEN_FDS: String(this.fds.length), LISTEN_FDNAMES: names },
    });
    this.child = child;
    this.emit('start', child.pid);
    return new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.child = undefined;
        this.emit('exit', code, signal);
        resolve();
      });
      child.on('error', () => {
        this.child = undefined;
        resolve();
      });
    });
  }

  /** Stops the service (SIGTERM) and closes and removes the sockets. */
  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (child) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    for (const fd of this.fds.splice(0)) closeFd(fd);
    for (const s of this.options.sockets) {
      try {
        unlinkSync(s.path);
      } catch {
        // already gone
      }
    }
  }
}
