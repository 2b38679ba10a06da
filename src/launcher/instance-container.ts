/**
 * What io.systemd.MachineInstance does to a container berth-spawn runs. A booted container is asked as
 * machinectl asks one through machined: SIGRTMIN+4 to its init powers it off, SIGINT reboots it. A payload
 * that is not an init has no such requests: PowerOff is berth-spawn's clean stop (the kill signal, then
 * SIGKILL after the stop timeout), Reboot is NotSupported. Pause and Resume freeze and thaw the machine's
 * cgroup v2 scope (cgroup.freeze); Terminate kills it at once. Events carry QMP's names so that a
 * subscriber sees the same words from containers and VMs: STOP, RESUME, POWERDOWN, RESET, SHUTDOWN.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NotConnected, NotSupported } from '../generated/io.systemd.MachineInstance.js';
import { POWEROFF_SIGNAL, REBOOT_SIGNAL } from '../domain/power-signals.js';
import { waitFor } from './teardown.js';
import { isCgroupFrozen } from './cgroup.js';
import type { Supervisor } from './supervisor.js';
import type { Teardown } from './teardown.js';
import { controlSocketPath, InstanceServer, type InstanceActions, type InstanceEvent } from './instance-server.js';

/** How long Pause waits for the kernel to report the scope frozen. */
const FREEZE_TIMEOUT_MS = 5000;

const freezableScope = (sup: Supervisor): string | undefined => sup.scope?.freezable();
const isFrozen = isCgroupFrozen;

async function setFrozen(dir: string, frozen: boolean): Promise<void> {
  fs.writeFileSync(path.join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
  await waitFor(() => isFrozen(dir) === frozen, FREEZE_TIMEOUT_MS, frozen ? 'the scope to freeze' : 'the scope to thaw', 5);
}

export function containerActions(sup: Supervisor, publish: (e: InstanceEvent) => void, stopTimeoutMs: number): InstanceActions {
  const live = (): void => {
    if (sup.state !== 'running' && sup.state !== 'starting') throw new NotConnected();
  };
  const scope = (): string => {
    const d = freezableScope(sup);
    if (!d) throw new NotSupported(); // no cgroup v2 scope: nothing to freeze with
    return d;
  };
  /** A frozen container cannot act on a request: thaw it first. */
  const thaw = async (): Promise<void> => {
    const d = freezableScope(sup);
    if (d && isFrozen(d)) {
      await setFrozen(d, false);
      publish({ event: 'RESUME' });
    }
  };
  return {
    async terminate() {
      if (sup.state === 'exited') throw new NotConnected();
      sup.kill();
      await thaw().catch(() => {}); // v1-style freezers keep killed tasks until thawed
    },
    async powerOff() {
      live();
      await thaw();
      publish({ event: 'POWERDOWN' });
      if (sup.options.boot) sup.signal(POWEROFF_SIGNAL);
      else void sup.stop(stopTimeoutMs);
    },
    async reboot() {
      live();
      if (!sup.options.boot) throw new NotSupported();
      await thaw();
      publish({ event: 'RESET' });
      sup.signal(REBOOT_SIGNAL);
    },
    async pause() {
      live();
      const d = scope();
      if (isFrozen(d)) return;
      await setFrozen(d, true);
      publish({ event: 'STOP' });
    },
    async resume() {
      live();
      const d = scope();
      if (!isFrozen(d)) return;
      await setFrozen(d, false);
      publish({ event: 'RESUME' });
    },
    async describe() {
      if (sup.state === 'exited') return { running: false, status: 'shutdown' };
      const d = freezableScope(sup);
      if (d && isFrozen(d)) return { running: false, status: 'paused' };
      return { running: true, status: sup.state };
    },
  };
}

/**
 * Serves the container's control socket in its run directory until the machine's teardown (which first
 * tells subscribers SHUTDOWN). Returns the socket path to register, or undefined when it cannot be served.
 */
export async function serveContainerInstance(sup: Supervisor, runDir: string, t: Teardown, stopTimeoutMs: number, log: (m: string) => void): Promise<string | undefined> {
  const socketPath = controlSocketPath(runDir);
  if (!socketPath) {
    log(`not serving io.systemd.MachineInstance: ${runDir} is too long for a socket path`);
    return undefined;
  }
  let server: InstanceServer | undefined;
  const publish = (e: InstanceEvent): void => server?.publish(e);
  server = await InstanceServer.start(socketPath, containerActions(sup, publish, stopTimeoutMs));
  const s = server;
  t.add('close the control socket', async () => {
    // QMP's SHUTDOWN says whether the guest asked; here: how PID 1 ended and what berth-spawn exits with.
    s.publish({ event: 'SHUTDOWN', ...(sup.exit ? { data: { reason: sup.exit.reason, code: sup.exit.code } } : {}) });
    await s.close();
  });
  return socketPath;
}
