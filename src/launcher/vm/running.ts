// A VM once qemu runs: readiness, the clean stop (QMP powerdown, then quit, then kill), and the cleanup that
// follows (unregister, then the launch's teardown: every undo step it recorded, newest first).

import type { ResultPromise } from 'execa';
import type { GuestNotifyListener } from './guest-notify.js';
import { withTimeout, type QmpClient } from './qmp.js';
import { unregisterMachine, type Registration } from '../registry-client.js';
import type { VmScope } from './scope.js';
import type { Teardown } from '../teardown.js';

export interface VmExit {
  exitCode?: number;
  signal?: string;
  /** EXIT_STATUS= the guest sent, if any */
  guestExitStatus?: number;
  stoppedBy?: 'powerdown' | 'quit' | 'kill';
}

export class VmLaunchError extends Error {
  override name = 'VmLaunchError';
}

export class RunningVm {
  readonly startedAt = performance.now();
  readyAt?: number;
  private stopping?: Promise<VmExit>;
  private stoppedBy?: VmExit['stoppedBy'];
  private registered = false;

  constructor(
    readonly name: string,
    readonly uuid: string,
    readonly runDir: string,
    readonly process: ResultPromise,
    readonly pid: number,
    readonly qmp: QmpClient,
    readonly notify: GuestNotifyListener,
    readonly scope: VmScope,
    readonly registration: Registration,
    readonly exited: Promise<VmExit>,
    private readonly teardown: Teardown,
    private readonly registrySocket: string,
  ) {}

  get isRegistered(): boolean {
    return this.registered;
  }

  /** @internal */
  markRegistered(): void {
    this.registered = true;
  }

  /** Resolves when the guest reports READY=1; rejects if qemu exits first. */
  async waitReady(timeoutMs?: number): Promise<number> {
    const exitFirst = this.exited.then((e) => {
      throw new VmLaunchError(`qemu exited before the guest reported ready (${describeExit(e)})`);
    });
    const ready = this.notify.waitReady().then(() => {
      this.readyAt ??= performance.now();
      return this.readyAt - this.startedAt;
    });
    const p = Promise.race([ready, exitFirst]);
    return timeoutMs === undefined ? p : withTimeout(p, timeoutMs, `guest readiness`);
  }

  /**
   * Clean stop: ACPI power button over QMP, wait for the guest to power off, then QMP quit, then SIGKILL.
   * Idempotent; resolves once qemu is gone and everything is cleaned up.
   */
  stop(powerdownTimeoutMs = 10_000, quitTimeoutMs = 3000): Promise<VmExit> {
    this.stopping ??= (async () => {
      if (!(await this.settled(0))) {
        this.stoppedBy = 'powerdown';
        await this.qmp.execute('system_powerdown').catch(() => {});
        if (!(await this.settled(powerdownTimeoutMs))) {
          this.stoppedBy = 'quit';
          await this.qmp.execute('quit').catch(() => {});
          if (!(await this.settled(quitTimeoutMs))) {
            this.stoppedBy = 'kill';
            this.kill();
          }
        }
      }
      return this.finish();
    })();
    return this.stopping;
  }

  /** SIGKILL qemu and everything in the scope. */
  kill(): void {
    this.stoppedBy ??= 'kill';
    for (const p of [this.pid, ...this.scope.pids()]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  /** Waits for qemu to exit on its own, then cleans up. */
  async wait(): Promise<VmExit> {
    await this.exited;
    return this.stop();
  }

  /** true once qemu has exited, false if it still runs after `ms` */
  private async settled(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    try {
      return await Promise.race([this.exited.then(() => true as const), t]);
    } finally {
      clearTimeout(timer);
    }
  }

  private finishing?: Promise<VmExit>;
  private finish(): Promise<VmExit> {
    this.finishing ??= (async () => {
      const e = await this.exited;
      if (this.registered) {
        await unregisterMachine(this.registrySocket, this.name).catch(() => {});
        this.registered = false;
      }
      await this.teardown.run(false);
      return { ...e, guestExitStatus: this.notify.state.exitStatus, stoppedBy: this.stoppedBy };
    })();
    return this.finishing;
  }
}

export function describeExit(e: VmExit): string {
  return e.signal ? `killed by ${e.signal}` : `exit status ${e.exitCode}`;
}
