import { describe, expect, it } from 'vitest';
import { KVM_PROBE_IMAGE, KVM_PROBE_EXIT, kvmProbeArgv } from '../../../src/launcher/vm/kvm-probe.js';

describe('KVM probe guest image', () => {
  it('is a valid multiboot image with the a.out kludge, loaded at 1 MiB', () => {
    const w = (i: number): number => KVM_PROBE_IMAGE.readUInt32LE(i * 4);
    expect(w(0)).toBe(0x1badb002);
    expect(w(1)).toBe(0x00010000);
    expect((w(0) + w(1) + w(2)) >>> 0).toBe(0); // checksum
    expect(w(3)).toBe(0x100000); // header_addr
    expect(w(4)).toBe(0x100000); // load_addr
    expect(w(5) - w(4)).toBe(KVM_PROBE_IMAGE.length); // load_end_addr covers the image
    expect(w(7)).toBeGreaterThan(0x100000); // entry inside the image
    expect(w(7)).toBeLessThan(0x100000 + KVM_PROBE_IMAGE.length);
    // it ends by writing 0x2a to port 0xf4: mov $0x2a,%al; out %al,$0xf4
    expect(KVM_PROBE_IMAGE.includes(Buffer.from([0xb0, 0x2a, 0xe6, 0xf4]))).toBe(true);
    expect(KVM_PROBE_EXIT).toBe((0x2a << 1) | 1);
  });

  it('boots with the isa-debug-exit device and the host CPU under KVM', () => {
    const a = kvmProbeArgv('/tmp/p.img', 'kvm');
    expect(a).toEqual(expect.arrayContaining(['-accel', 'kvm', '-cpu', 'host', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-kernel', '/tmp/p.img']));
    expect(kvmProbeArgv('/tmp/p.img', 'tcg')).not.toContain('-cpu');
  });
});
