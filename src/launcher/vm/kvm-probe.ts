// Does KVM work here? /dev/kvm existing is not enough: on PVM-backed hosts the device opens, qemu starts, and a
// stock guest never gets anywhere. So `--kvm=auto` boots a tiny guest under KVM with a short deadline and uses
// KVM only when that guest finishes. The answer is cached per boot and qemu binary.
//
// The guest is a 182-byte multiboot image (a.out kludge, loaded at 1 MiB). It builds identity-mapped page
// tables, enables PAE, EFER.LME and paging, far-jumps into a 64-bit code segment, runs a 50-million-iteration
// loop that adds to memory, and writes 0x2a to an isa-debug-exit port, which ends qemu with status
// (0x2a << 1) | 1 = 85. The loop matters: on the PVM host this project runs on, the mode switches succeed but
// ordinary guest code then crawls or stalls, which is what hangs a real kernel. Under working KVM the whole
// probe takes well under a second; under TCG about a quarter of a second.
//
// Source (GNU as, `as --32 && objcopy -O binary`), BASE = 0x100000:
//   header: .long 0x1BADB002, 0x00010000, -(sum), BASE, BASE, BASE+size, BASE+0x4000, BASE+(entry-header)
//   entry:  cli; zero 12 KiB at BASE+0x1000 (rep stosl);
//           PML4[0] = BASE+0x2003; PDPT[0] = BASE+0x3003; PD[0] = 0x83 (2 MiB page at 0)
//           cr3 = BASE+0x1000; cr4 |= PAE; EFER |= LME (rdmsr/wrmsr 0xC0000080); cr0 |= PG|PE
//           lgdt gdtr; ljmp $0x08, long64
//   long64: ecx = 50000000; 1: add %ecx, (0x1FFFF8); dec %ecx; jnz 1b
//           mov $0x2a, %al; out %al, $0xf4; hlt loop
//   gdt:    null, 0x00AF9A000000FFFF (64-bit code); gdtr: limit 15, base

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { bootId } from '../../domain/process.js';

export const KVM_PROBE_IMAGE = Buffer.from(
  '02b0ad1b00000100fe4f51e40000100000001000b60010000040100020001000fabf0010100031c0b9000c0000f3abc705001010' +
    '0003201000c7050020100003301000c7050030100083000000b8001010000f22d80f20e083c8200f22e0b9800000c00f320d0001' +
    '00000f300f20c00d010000800f22c00f0115b0001000ea850010000800b980f0fa02010c25f8ff1f00ffc975f5b02ae6f4f4ebfd' +
    '8d7426000000000000000000ffff0000009aaf000f00a0001000',
  'hex',
);

/** qemu's exit status when the probe guest reached its end. */
export const KVM_PROBE_EXIT = (0x2a << 1) | 1;

export interface KvmProbeResult {
  works: boolean;
  /** why not, in words a user can act on */
  detail: string;
  elapsedMs: number;
  cached: boolean;
}

/** The qemu argv of the probe guest (without the binary). */
export function kvmProbeArgv(imagePath: string, accel: 'kvm' | 'tcg'): string[] {
  return [
    '-machine', 'q35',
    '-accel', accel,
    ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', '32M',
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
    '-kernel', imagePath,
  ];
}

/** Boots the probe image under `accel`; resolves when qemu exits or the deadline passes (then qemu is killed). */
export async function runProbeGuest(qemu: string, accel: 'kvm' | 'tcg', deadlineMs: number): Promise<KvmProbeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-kvm-probe-'));
  const start = performance.now();
  try {
    const image = join(dir, 'probe.img');
    writeFileSync(image, KVM_PROBE_IMAGE);
    const r = await execa(qemu, kvmProbeArgv(image, accel), {
      reject: false,
      timeout: deadlineMs,
      killSignal: 'SIGKILL',
      stdin: 'ignore',
      all: true,
    });
    const elapsedMs = Math.round(performance.now() - start);
    if (r.exitCode === KVM_PROBE_EXIT) return { works: true, detail: `${accel} test guest ran in ${elapsedMs} ms`, elapsedMs, cached: false };
    if (r.timedOut)
      return { works: false, detail: `a ${accel} test guest did not finish within ${deadlineMs} ms (the host's ${accel === 'kvm' ? '/dev/kvm' : 'TCG'} cannot run ordinary guests)`, elapsedMs, cached: false };
    const out = String(r.all ?? '').trim().split('\n').filter(Boolean).pop() ?? '';
    return { works: false, detail: `a ${accel} test guest failed (qemu exit ${r.exitCode ?? r.signal}${out ? `: ${out}` : ''})`, elapsedMs, cached: false };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface CacheEntry {
  bootId: string;
  qemu: string;
  qemuMtimeMs: number;
  works: boolean;
  detail: string;
  elapsedMs: number;
}

/** What ties a cached answer to this boot: the boot id, or 'unknown' where /proc has none. */
function bootKey(): string {
  try {
    return bootId();
  } catch {
    return 'unknown';
  }
}

/**
 * Whether KVM works here: /dev/kvm must exist, and the probe guest must finish under KVM within the deadline.
 * Cached in `cacheFile` (keyed on boot id and qemu binary); pass undefined to skip the cache.
 */
export async function probeKvm(qemu: string, cacheFile: string | undefined, deadlineMs = 3000, kvmDevice = '/dev/kvm'): Promise<KvmProbeResult> {
  try {
    statSync(kvmDevice);
  } catch {
    return { works: false, detail: `${kvmDevice} does not exist`, elapsedMs: 0, cached: false };
  }
  const key = { bootId: bootKey(), qemu, qemuMtimeMs: statSync(qemu).mtimeMs };
  if (cacheFile) {
    try {
      const c = JSON.parse(readFileSync(cacheFile, 'utf8')) as CacheEntry;
      if (c.bootId === key.bootId && c.qemu === key.qemu && c.qemuMtimeMs === key.qemuMtimeMs)
        return { works: c.works, detail: c.detail, elapsedMs: c.elapsedMs, cached: true };
    } catch {
      // no cache yet, or unreadable: probe
    }
  }
  const r = await runProbeGuest(qemu, 'kvm', deadlineMs);
  if (cacheFile) {
    try {
      mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o755 });
      const entry: CacheEntry = { ...key, works: r.works, detail: r.detail, elapsedMs: r.elapsedMs };
      writeFileSync(cacheFile, JSON.stringify(entry) + '\n');
    } catch {
      // a cache we cannot write only costs another probe next time
    }
  }
  return r;
}
