/**
 * What io.systemd.MachineInstance does to a VM berth-spawn runs, through qemu's QMP monitor, as
 * systemd-vmspawn 262 does: PowerOff is the ACPI power button (system_powerdown), Reboot a reset
 * (system_reset), Pause/Resume stop and continue the vCPUs, Terminate quits qemu (killing it when QMP is
 * gone), Describe is query-status. Every QMP event is passed on to subscribers under its own name.
 */
import { NotConnected } from '../generated/io.systemd.MachineInstance.js';
import type { QmpClient } from './vm/qmp.js';
import type { Teardown } from './teardown.js';
import { controlSocketPath, InstanceServer, type InstanceActions } from './instance-server.js';

export interface VmControl {
  qmp: QmpClient;
  /** SIGKILL qemu and its scope (when QMP cannot be used to quit) */
  kill(): void;
}

export function vmActions(vm: VmControl): InstanceActions {
  const qmp = async (command: string): Promise<unknown> => {
    if (vm.qmp.closed) throw new NotConnected();
    try {
      return await vm.qmp.execute(command);
    } catch (e) {
      if (vm.qmp.closed) throw new NotConnected();
      throw e;
    }
  };
  return {
    async terminate() {
      if (vm.qmp.closed) { vm.kill(); return; }
      // qemu answers quit and then drops the connection; the answer may be lost with it.
      await vm.qmp.execute('quit').catch(() => { if (!vm.qmp.closed) vm.kill(); });
    },
    async powerOff() { await qmp('system_powerdown'); },
    async reboot() { await qmp('system_reset'); },
    async pause() { await qmp('stop'); },
    async resume() { await qmp('cont'); },
    async describe() {
      if (vm.qmp.closed) return { running: false, status: 'shutdown' };
      const s = (await qmp('query-status')) as { running?: boolean; status?: string };
      return { running: s.running === true, status: s.status ?? 'unknown' };
    },
  };
}

/** Serves the VM's control socket in its run directory until teardown; returns its path, or undefined when too long. */
export async function serveVmInstance(vm: VmControl, runDir: string, t: Teardown, log: (m: string) => void): Promise<string | undefined> {
  const socketPath = controlSocketPath(runDir);
  if (!socketPath) {
    log(`not serving io.systemd.MachineInstance: ${runDir} is too long for a socket path`);
    return undefined;
  }
  const server = await InstanceServer.start(socketPath, vmActions(vm));
  const forward = (e: { event: string; data?: unknown }): void => {
    const data = e.data && typeof e.data === 'object' && !Array.isArray(e.data) ? (e.data as Record<string, unknown>) : undefined;
    server.publish({ event: e.event, ...(data ? { data } : {}) });
  };
  vm.qmp.on('event', forward);
  t.add('close the control socket', async () => {
    vm.qmp.off('event', forward);
    await server.close();
  });
  return socketPath;
}
