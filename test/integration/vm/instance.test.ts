// io.systemd.MachineInstance of a real TCG VM (the test kernel and busybox initramfs): berth-spawn registers
// the control socket as controlAddress; Describe is QMP's query-status, Pause/Resume stop and continue the
// vCPUs, PowerOff presses the ACPI button, Terminate quits qemu, and subscribers see QMP's events.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchVm } from '../../../src/launcher/vm/launch.js';
import { parseVmOptions } from '../../../src/client/spawn-vm-args.js';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachineInstance, NotSupported } from '../../../src/generated/io.systemd.MachineInstance.js';
import { FakeRegistry, findGuest, GUEST_INIT, waitFor, writeCpio } from './guest.js';

const guest = findGuest();
const skipReason = 'skip' in guest ? guest.skip : undefined;
if (skipReason) console.warn(`VM instance tests skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('io.systemd.MachineInstance of a VM', () => {
  const files = guest as { kernel: string; initrd: string };
  let dir: string;
  let runtime: string;
  let overlay: string;
  let registry: FakeRegistry;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-vmi-'));
    runtime = join(dir, 'run');
    overlay = join(dir, 'overlay.cpio');
    writeCpio(overlay, { init: GUEST_INIT });
    registry = new FakeRegistry(join(runtime, 'systemd/machine/io.systemd.Machine'));
    await registry.start();
  });
  afterAll(async () => {
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers its control socket and acts through QMP', async () => {
    const name = `vmi-${process.pid}`;
    const opts = parseVmOptions([
      '--vm', `--runtime-dir=${runtime}`, '-M', name, '--ram=256M', '--console=read-only', '--register=yes',
      `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`, 'quiet',
    ]);
    const vm = await launchVm(opts, { info: () => {}, console: () => {}, qemuStderr: () => {} });
    let c: VarlinkClient | undefined;
    let sub: VarlinkClient | undefined;
    try {
      const controlAddress = join(vm.runDir, 'io.systemd.MachineInstance');
      const reg = registry.calls.find((x) => x.method === 'io.systemd.Machine.Register' && x.parameters.name === name);
      expect(reg?.parameters.controlAddress).toBe(controlAddress);
      await vm.waitReady(60_000);

      c = await VarlinkClient.connect({ kind: 'unix', path: controlAddress }, { interfaces: [IoSystemdMachineInstance], timeout: 10_000 });
      const m = c.proxy(IoSystemdMachineInstance);
      const events: string[] = [];
      sub = await VarlinkClient.connect({ kind: 'unix', path: controlAddress }, { timeout: 0 });
      const stream = (async () => {
        for await (const e of sub!.proxy(IoSystemdMachineInstance).SubscribeEvents.more({ filter: ['STOP', 'RESUME', 'POWERDOWN', 'SHUTDOWN'] })) events.push(e.event);
      })().catch(() => {});
      expect(await m.Describe()).toEqual({ running: true, status: 'running' });

      await m.Pause();
      expect(await m.Describe()).toEqual({ running: false, status: 'paused' });
      await m.Resume();
      expect(await m.Describe()).toEqual({ running: true, status: 'running' });
      await expect(m.AddStorage({ fileDescriptorIndex: 0, name: 'x' })).rejects.toBeInstanceOf(NotSupported);

      await m.PowerOff();
      await waitFor(() => events.includes('POWERDOWN'), 10_000, 'the POWERDOWN event');
      if (existsSync(`/proc/${vm.pid}`)) await m.Terminate().catch(() => {}); // the guest may have no power button handler
      const exit = await vm.wait();
      expect(exit.exitCode).toBe(0);
      await stream;
      expect(events.slice(0, 3)).toEqual(['STOP', 'RESUME', 'POWERDOWN']);
      expect(events).toContain('SHUTDOWN');
      expect(existsSync(controlAddress)).toBe(false);
    } finally {
      c?.close();
      sub?.close();
      vm.kill();
      await vm.stop(0, 0);
    }
  }, 120_000);
});
