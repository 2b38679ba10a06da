// `berth-spawn --vm` once its command line is parsed: launch, wait for the guest to be ready, supervise until it
// ends, clean up, and say how it ended as an exit status. The client (src/client/berth-spawn.ts) parses the
// arguments and loads this module only for VMs.

import { HostLacksError } from './host.js';
import { describeExit, launchVm, VmLaunchError, type LaunchSettings, type RunningVm } from './launch.js';
import { VmUsageError, type VmOptions } from './options.js';

export { listFirmwareFiles } from './firmware.js';

export interface VmMainIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** install SIGINT/SIGTERM handlers (off for in-process tests) */
  signals: boolean;
  settings?: LaunchSettings;
  /** called once the VM is ready (tests and berthd use it to drive the machine) */
  onReady?: (vm: RunningVm, readyMs: number) => void;
}

const PROG = 'berth-spawn';

/** Tells our own supervisor (systemd, berthd's launch service) about the VM, as vmspawn does: only when $NOTIFY_SOCKET is set. */
async function notifySupervisor(message: string): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  try {
    const { sdNotify } = await import('../notify.js');
    sdNotify(message);
  } catch {
    // a supervisor that cannot be told is no reason to fail the VM
  }
}

/** Runs the VM the options describe to its end; returns berth-spawn's exit status. */
export async function runVm(opts: VmOptions, io: VmMainIo): Promise<number> {
  const err = (msg: string): void => void io.stderr.write(`${PROG}: ${msg}\n`);
  const quiet = opts.quiet;
  const info = (msg: string): void => {
    if (!quiet) err(msg);
  };
  const tty = (io.stdout as { isTTY?: boolean }).isTTY === true;
  const interactive = opts.console === 'interactive' || opts.console === 'native';
  if (opts.background && interactive && tty) io.stdout.write(`\x1b]11;${opts.background}\x07`);

  let vm: RunningVm | undefined;
  let signalCount = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signalCount++;
    if (!vm) return;
    if (signalCount === 1) {
      info(`${sig}: powering off ${vm.name} (again to kill)`);
      void notifySupervisor('STOPPING=1\nSTATUS=Powering off the VM.');
      void vm.stop();
    } else vm.kill();
  };
  if (io.signals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    vm = await launchVm(
      opts,
      {
        info,
        console: (d) => void io.stdout.write(d),
        qemuStderr: (d) => void io.stderr.write(d),
      },
      io.settings,
    );
    info(`machine ${vm.name} started: qemu pid ${vm.pid}, uuid ${vm.uuid}${vm.isRegistered ? ', registered' : ''}`);
    await notifySupervisor(`STATUS=VM started.\nX_BERTH_LEADER_PID=${vm.pid}`);
    if (interactive && !quiet) info('press Ctrl-a x to terminate qemu');
    if (signalCount > 0) void vm.stop();
    if (opts.notifyReady) {
      const readyMs = await vm.waitReady().catch(() => undefined);
      if (readyMs !== undefined) {
        info(`machine ${vm.name} ready after ${Math.round(readyMs)} ms`);
        await notifySupervisor(`READY=1\nSTATUS=VM running.${vm.notify.state.status ? ` ${vm.notify.state.status}` : ''}`);
        io.onReady?.(vm, readyMs);
      }
    } else {
      await notifySupervisor('READY=1\nSTATUS=VM running.');
      io.onReady?.(vm, 0);
    }
    const e = await vm.wait();
    info(`machine ${vm.name} ended: ${describeExit(e)}${e.stoppedBy ? ` after ${e.stoppedBy}` : ''}`);
    if (e.guestExitStatus !== undefined) return e.guestExitStatus;
    if (e.stoppedBy) return 0;
    return e.exitCode === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof VmUsageError || e instanceof HostLacksError || e instanceof VmLaunchError) {
      err(e.message);
      return 1;
    }
    err(`unexpected error: ${(e as Error).stack ?? e}`);
    return 1;
  } finally {
    if (io.signals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (opts.background && interactive && tty) io.stdout.write('\x1b]111\x07');
  }
}
