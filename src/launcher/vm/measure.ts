// Time to ready of a TCG VM, for `npm run bench`: boots the test kernel and busybox initramfs that
// `scripts/rootfs.sh vm` builds (its /init writes READY=1 to any virtio-serial port whose name ends in
// "notify", and berth's is io.berth.notify), then stops it over QMP.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchVm } from './launch.js';
import { defaultVmOptions } from './options.js';

export interface VmReadySample {
  /** qemu started → READY=1 from the guest */
  readyMs: number;
  /** launchVm() called → READY=1 (includes KVM probe, run dir, sockets, QMP handshake) */
  totalMs: number;
  /** stop requested → qemu gone and cleaned up */
  stopMs: number;
  accel: string;
}

export async function measureVmReady(p: { kernel: string; initrd: string; runs: number; ramBytes?: number; kernelCmdline?: string[] }): Promise<VmReadySample[]> {
  const runtime = mkdtempSync(join(tmpdir(), 'berth-vm-bench-'));
  const out: VmReadySample[] = [];
  try {
    for (let i = 0; i < p.runs; i++) {
      // what `--runtime-dir=RT -M bench-PID-I --ram=256M --console=read-only --register=no --tpm=no --linux=K --initrd=I
      // berth.hold=1 quiet` gives
      const opts = {
        ...defaultVmOptions(), runtimeDir: runtime, machine: `bench-${process.pid}-${i}`, ramBytes: p.ramBytes ?? 256 * 1024 ** 2,
        console: 'read-only' as const, register: 'no' as const, tpm: 'no' as const, linux: p.kernel, initrds: [p.initrd],
        kernelCmdline: [...(p.kernelCmdline ?? []), 'berth.hold=1', 'quiet'],
      };
      let accel = '';
      const t0 = performance.now();
      const vm = await launchVm(opts, { info: (m) => void (/KVM|TCG/.test(m) && (accel = m)), console: () => {}, qemuStderr: () => {} });
      try {
        const readyMs = await vm.waitReady(60_000);
        const totalMs = performance.now() - t0;
        const s0 = performance.now();
        // the bench guest has no ACPI power button handler: a short grace, then QMP quit
        await vm.stop(200, 3000);
        out.push({ readyMs, totalMs, stopMs: performance.now() - s0, accel });
      } finally {
        vm.kill();
        await vm.stop(0, 0);
      }
    }
  } finally {
    rmSync(runtime, { recursive: true, force: true });
  }
  return out;
}
