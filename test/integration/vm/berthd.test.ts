// A TCG VM registered with the real berthd (in process, on a temp runtime dir): it is in
// io.systemd.Machine.List with class vm, its id, the qemu leader and its scope unit while it runs,
// and gone once it has stopped.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Daemon } from '../../../src/server/daemon.js';
import { machineSocketPath } from '../../../src/domain/runtime-paths.js';
import { VarlinkError as VarlinkCallError } from '../../../src/varlink/errors.js';
import { varlinkCall } from '../../helpers/call-once.js';
import { launchVm } from '../../../src/launcher/vm/launch.js';
import { parseVmOptions } from '../../../src/client/spawn-vm-args.js';
import { machineScopeUnit as scopeName } from '../../../src/domain/unit-names.js';
import { findGuest, GUEST_INIT, writeCpio } from './guest.js';

const guest = findGuest();
const why = 'skip' in guest ? guest.skip : undefined;
if (why) console.warn(`VM registration test skipped: ${why}`);

let rt: string;
let daemon: Daemon | undefined;

beforeAll(async () => {
  if (why) return;
  rt = mkdtempSync(join(tmpdir(), 'berth-vmreg-'));
  chmodSync(rt, 0o755);
  daemon = new Daemon(
    { runtimeDir: rt, userdbService: `io.berth.vmtest${process.pid}`, idleExitSeconds: 0, logLevel: 'silent', allowUserRegister: false, imageDirectories: [] },
    pino({ level: 'silent' }),
  );
  await daemon.start();
});

afterAll(async () => {
  await daemon?.stop();
  if (rt) rmSync(rt, { recursive: true, force: true });
});

describe.skipIf(why !== undefined)('VM registration with berthd', () => {
  it('lists the running VM and forgets it once stopped', async () => {
    const files = guest as { kernel: string; initrd: string };
    const overlay = join(rt, 'overlay.cpio');
    writeCpio(overlay, { init: GUEST_INIT });
    const name = 'vm-reg';
    const uuid = '5a0b7d9e-1c2f-4a3b-8d4e-6f7a8b9c0d1e';
    const vm = await launchVm(
      parseVmOptions(['--vm', `--runtime-dir=${rt}`, '-M', name, '--uuid', uuid, '--ram=256M', '--console=read-only', '--register=yes', '--kvm=no', '--tpm=no',
        `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`, 'quiet']),
      { info: () => {}, console: () => {}, qemuStderr: () => {} },
    );
    const socket = machineSocketPath(rt);
    try {
      expect(vm.isRegistered).toBe(true);
      const m = await varlinkCall(socket, 'io.systemd.Machine.List', { name });
      expect(m).toMatchObject({ name, class: 'vm', id: uuid.replace(/-/g, ''), service: 'berth-spawn', unit: scopeName(name) });
      expect(JSON.stringify(m.leader)).toContain(String(vm.pid));
      await vm.waitReady(60_000);
    } finally {
      await vm.stop(1500, 3000);
    }
    await expect(varlinkCall(socket, 'io.systemd.Machine.List', { name })).rejects.toBeInstanceOf(VarlinkCallError);
  });
});
