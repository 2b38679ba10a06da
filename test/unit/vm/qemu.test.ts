import { describe, expect, it } from 'vitest';
import { buildQemuArgv, cidFromName, directBootCmdline, macFromName, qemuEscape, tapName, type QemuPlan } from '../../../src/launcher/vm/qemu.js';

function plan(over: Partial<QemuPlan> = {}): QemuPlan {
  return {
    name: 'vm1',
    uuid: '0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b',
    accel: 'tcg',
    cpus: 2,
    ramBytes: 256 * 1024 ** 2,
    boot: { kind: 'direct', kernel: '/k/vmlinux', initrd: '/run/vm1/initrd', cmdline: 'console=ttyS0 quiet' },
    extraDrives: [],
    smbiosFiles: ['/run/vm1/smbios/smbios11-00', '/run/vm1/smbios/smbios11-01'],
    qmpSocket: '/run/vm1/qmp.sock',
    notifySocket: '/run/vm1/notify.sock',
    console: 'read-only',
    network: 'none',
    virtiofs: [],
    ...over,
  };
}

/** value of the option following each occurrence of `flag` */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

describe('buildQemuArgv', () => {
  it('direct boot under TCG: the exact command line', () => {
    expect(buildQemuArgv(plan())).toEqual([
      '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '256M',
      '-nodefaults', '-no-user-config', '-name', 'vm1', '-uuid', '0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b',
      '-object', 'rng-random,filename=/dev/urandom,id=rng0', '-device', 'virtio-rng-pci,rng=rng0',
      '-chardev', 'socket,id=qmp,path=/run/vm1/qmp.sock', '-mon', 'chardev=qmp,mode=control',
      '-device', 'virtio-serial-pci,id=vser0',
      '-chardev', 'socket,id=notify,path=/run/vm1/notify.sock',
      '-device', 'virtserialport,bus=vser0.0,chardev=notify,name=io.berth.notify',
      '-display', 'none', '-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console',
      '-smbios', 'type=11,path=/run/vm1/smbios/smbios11-00', '-smbios', 'type=11,path=/run/vm1/smbios/smbios11-01',
      '-kernel', '/k/vmlinux', '-initrd', '/run/vm1/initrd', '-append', 'console=ttyS0 quiet',
    ]);
  });

  it('--discard-disk=no makes qemu ignore the guest\'s discard requests on the image', () => {
    const boot = { kind: 'firmware' as const, codePath: '/c.fd', codeFormat: 'raw' as const, secureBoot: false, requiresSmm: false };
    const off = buildQemuArgv(plan({ boot, image: { path: '/img/r.raw', format: 'raw', discard: false } }));
    expect(values(off, '-drive')).toContain('if=none,id=root,file=/img/r.raw,format=raw,discard=ignore');
    const on = buildQemuArgv(plan({ boot, image: { path: '/img/r.raw', format: 'raw', discard: true } }));
    expect(values(on, '-drive')).toContain('if=none,id=root,file=/img/r.raw,format=raw,discard=unmap');
  });

  it('KVM uses the host CPU', () => {
    const a = buildQemuArgv(plan({ accel: 'kvm' }));
    expect(values(a, '-accel')).toEqual(['kvm']);
    expect(values(a, '-cpu')).toEqual(['host']);
  });

  it('firmware boot: pflash code read-only, a writable vars copy, secure boot and SMM when the firmware wants them', () => {
    const a = buildQemuArgv(
      plan({
        boot: { kind: 'firmware', codePath: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', codeFormat: 'raw', varsPath: '/run/vm1/efi-vars.fd', varsFormat: 'raw', secureBoot: true, requiresSmm: true },
        image: { path: '/img/a,b.raw', format: 'raw' },
      }),
    );
    expect(values(a, '-machine')).toEqual(['q35,smm=on']);
    expect(values(a, '-drive')).toEqual([
      'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
      'if=pflash,format=raw,file=/run/vm1/efi-vars.fd',
      'if=none,id=root,file=/img/a,,b.raw,format=raw,discard=unmap',
    ]);
    expect(values(a, '-global')).toEqual(['ICH9-LPC.disable_s3=1', 'driver=cfi.pflash01,property=secure,value=on']);
    expect(values(a, '-device')).toContain('virtio-blk-pci,drive=root,bootindex=1');
    expect(a).not.toContain('-kernel');
    expect(a).not.toContain('-append');
  });

  it('virtiofs shares need a shared memory backend', () => {
    const a = buildQemuArgv(plan({ virtiofs: [{ tag: 'root', socket: '/run/vm1/fs-root.sock' }, { tag: 'mnt0', socket: '/run/vm1/fs-mnt0.sock' }] }));
    expect(values(a, '-machine')).toEqual(['q35,memory-backend=mem']);
    expect(values(a, '-object')).toContain('memory-backend-memfd,id=mem,size=256M,share=on');
    expect(values(a, '-device')).toEqual(expect.arrayContaining(['vhost-user-fs-pci,queue-size=1024,chardev=fs0,tag=root', 'vhost-user-fs-pci,queue-size=1024,chardev=fs1,tag=mnt0']));
    expect(values(a, '-chardev')).toEqual(expect.arrayContaining(['socket,id=fs0,path=/run/vm1/fs-root.sock']));
  });

  it('networks, extra drives, TPM and vsock', () => {
    const a = buildQemuArgv(plan({ network: 'tap', extraDrives: [{ path: '/d/x.qcow2', format: 'qcow2' }], tpmSocket: '/run/vm1/tpm.sock', vsockCid: 1234 }));
    expect(values(a, '-nic')).toEqual([`tap,ifname=vt-vm1,script=no,downscript=no,model=virtio-net-pci,mac=${macFromName('vm1')}`]);
    expect(values(a, '-drive')).toContain('if=none,id=extra0,file=/d/x.qcow2,format=qcow2,discard=unmap');
    expect(values(a, '-tpmdev')).toEqual(['emulator,id=tpm0,chardev=chrtpm']);
    expect(values(a, '-device')).toEqual(expect.arrayContaining(['tpm-tis,tpmdev=tpm0', 'vhost-vsock-pci,guest-cid=1234']));
    expect(values(buildQemuArgv(plan({ network: 'user' })), '-nic')).toEqual([`user,model=virtio-net-pci,mac=${macFromName('vm1')}`]);
  });

  it('console modes', () => {
    expect(values(buildQemuArgv(plan({ console: 'interactive' })), '-chardev')).toContain('stdio,id=console,mux=on,signal=off');
    const native = buildQemuArgv(plan({ console: 'native' }));
    expect(values(native, '-mon')).toEqual(['chardev=qmp,mode=control', 'chardev=console,mode=readline']);
    const gui = buildQemuArgv(plan({ console: 'gui' }));
    expect(values(gui, '-vga')).toEqual(['virtio']);
    expect(gui).not.toContain('-display');
  });
});

describe('helpers', () => {
  it('escapes commas', () => expect(qemuEscape('a,b,,c')).toBe('a,,b,,,,c'));
  it('tap names fit IFNAMSIZ', () => {
    expect(tapName('vm1')).toBe('vt-vm1');
    expect(tapName('a-very-long-machine-name')).toBe('vt-a-very-long-');
  });
  it('MACs are stable, unicast and locally administered', () => {
    const m = macFromName('vm1');
    expect(m).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(macFromName('vm1')).toBe(m);
    expect(macFromName('vm2')).not.toBe(m);
    expect(parseInt(m.slice(0, 2), 16) & 0x03).toBe(0x02);
  });
  it('CIDs stay out of the reserved values', () => {
    for (const n of ['a', 'b', 'vm1', 'x'.repeat(64)]) {
      const c = cidFromName(n);
      expect(c).toBeGreaterThanOrEqual(3);
      expect(c).toBeLessThanOrEqual(0xfffffffe);
      expect(cidFromName(n)).toBe(c);
    }
  });
  it('direct boot command line: console, virtiofs root, bind mounts, then the extras', () => {
    expect(directBootCmdline({ console: 'read-only', rootVirtiofs: true, binds: [{ tag: 'mnt0', target: '/srv', readOnly: true }], extra: ['quiet', 'x=1'] })).toBe(
      'console=ttyS0 root=root rootfstype=virtiofs rw systemd.mount-extra=mnt0:/srv:virtiofs:ro quiet x=1',
    );
    expect(directBootCmdline({ console: 'gui', rootVirtiofs: false, binds: [], extra: [] })).toBe('');
  });
});
