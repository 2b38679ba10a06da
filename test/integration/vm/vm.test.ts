// A real TCG VM: Debian kernel + busybox initramfs. It must read an SMBIOS type 11 credential and a kernel
// command line extra, see the SMBIOS UUID as its product UUID, report READY=1 over virtio-serial, appear in
// (a stand-in) registry while it runs, and stop over QMP with nothing left behind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { launchVm, type RunningVm } from '../../../src/launcher/vm/launch.js';
import { vmMain } from '../../../src/client/berth-spawn.js';
import { parseVmOptions } from '../../../src/client/spawn-vm-args.js';
import { runProbeGuest, probeKvm, KVM_PROBE_EXIT } from '../../../src/launcher/vm/kvm-probe.js';
import { findExecutable, findQemu, findVirtiofsd } from '../../../src/launcher/vm/host.js';
import { listFirmwareFiles } from '../../../src/launcher/vm/firmware.js';
import { tapName } from '../../../src/launcher/vm/qemu.js';
import { machineScopeUnit as scopeUnitName } from '../../../src/domain/unit-names.js';
import { FakeRegistry, findGuest, GUEST_INIT, machineProcesses, pidAlive, waitFor, writeCpio } from './guest.js';

const guest = findGuest();
const skipReason = 'skip' in guest ? guest.skip : undefined;
if (skipReason) console.warn(`VM integration tests skipped: ${skipReason}`);

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

function leftovers(runtime: string, name: string): string[] {
  const found: string[] = machineProcesses(name, runtime).map((p) => `process ${p}`);
  if (existsSync(join(runtime, 'berth/vm', name))) found.push(`run dir ${join(runtime, 'berth/vm', name)}`);
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup']) {
    const d = join(root, 'machine.slice', scopeUnitName(name));
    if (existsSync(d)) found.push(`cgroup ${d}`);
  }
  return found;
}

describe.skipIf(skipReason !== undefined)('TCG VM (real qemu)', () => {
  const files = guest as { kernel: string; initrd: string };
  let dir: string;
  let runtime: string;
  let overlay: string;
  let registry: FakeRegistry;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-vm-test-'));
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

  it('boots, reads an SMBIOS credential and a cmdline extra, reports ready, registers, and stops over QMP', async () => {
    const name = `vmt-${process.pid}`;
    const binCred = join(dir, 'blob');
    writeFileSync(binCred, Buffer.from([0xff, 0x00, 0x01, 0x41]));
    const uuid = '0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b';
    const opts = parseVmOptions([
      '--vm', `--runtime-dir=${runtime}`, '-M', name, '--uuid', uuid, '--ram=256M', '--console=read-only', '--register=yes',
      `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`,
      '--set-credential=greeting:hello, world', `--load-credential=blob:${binCred}`,
      'berth.test=cmdline-extra', 'quiet',
    ]);
    let consoleText = '';
    const t0 = performance.now();
    const vm: RunningVm = await launchVm(opts, {
      info: () => {},
      console: (d) => void (consoleText += d.toString()),
      qemuStderr: () => {},
    });
    let stopped = false;
    try {
      const readyMs = await vm.waitReady(30_000);
      const totalMs = performance.now() - t0;
      console.log(`VM ${name}: READY=1 ${Math.round(readyMs)} ms after qemu started, ${Math.round(totalMs)} ms after launchVm() was called`);
      // The 6 s target is measured by `npm run bench`, not asserted here (a loaded CI machine is slower).
      expect(readyMs).toBeGreaterThan(0);
      expect(vm.notify.state.fields.STATUS).toBe('test guest up');

      await waitFor(() => consoleText.includes('VMTEST-READY'), 10_000, 'the guest to finish its report');
      expect(consoleText).toContain('VMTEST-CRED greeting=hello, world');
      expect(consoleText).toContain('VMTEST-SMBIOS11 io.systemd.credential:greeting=hello, world');
      expect(consoleText).toContain(`VMTEST-SMBIOS11 io.systemd.credential.binary:blob=${Buffer.from([0xff, 0, 1, 0x41]).toString('base64')}`);
      expect(consoleText).toMatch(/VMTEST-CMDLINE console=ttyS0 .*berth\.test=cmdline-extra quiet/);
      expect(consoleText).toContain(`VMTEST-UUID ${uuid}`);

      // registered with the leader, class vm, no unit allocation
      const reg = registry.calls.find((c) => c.method === 'io.systemd.Machine.Register' && c.parameters.name === name);
      expect(reg?.parameters).toMatchObject({ class: 'vm', leader: vm.pid, allocateUnit: false, id: uuid.replace(/-/g, ''), service: 'berth-spawn' });
      expect(registry.machines.has(name)).toBe(true);

      // the leftovers check sees qemu while it runs (so its empty answer later means something)
      expect(machineProcesses(name, runtime)).toContain(vm.pid);

      // qemu lives in the machine's own scope
      const cg = readFileSync(`/proc/${vm.pid}/cgroup`, 'utf8');
      if (vm.scope.dirs.length > 0) expect(cg).toContain(`/machine.slice/${scopeUnitName(name)}`);

      // QMP works while it runs
      const status = await vm.qmp.execute<{ status: string }>('query-status');
      expect(status.status).toBe('running');

      // the same name cannot be started twice
      await expect(launchVm(opts, { info: () => {}, console: () => {}, qemuStderr: () => {} })).rejects.toThrow(/already running/);

      const armed = consoleText.includes('VMTEST-POWERBUTTON armed');
      const s0 = performance.now();
      const exit = await vm.stop(armed ? 10_000 : 1500, 3000);
      stopped = true;
      console.log(`VM ${name}: stopped by ${exit.stoppedBy} in ${Math.round(performance.now() - s0)} ms (power button handler in guest: ${armed})`);
      expect(exit.stoppedBy).toBe(armed ? 'powerdown' : 'quit');
      expect(exit.exitCode).toBe(0);
      if (armed) expect(consoleText).toContain('VMTEST-POWERBUTTON pressed');
      expect(vm.qmp.events.some((e) => e.event === 'POWERDOWN')).toBe(true);

      expect(pidAlive(vm.pid)).toBe(false);
      expect(registry.calls.some((c) => c.method === 'io.systemd.Machine.Unregister' && c.parameters.name === name)).toBe(true);
      expect(registry.machines.has(name)).toBe(false);
      expect(leftovers(runtime, name)).toEqual([]);
    } finally {
      if (!stopped) {
        vm.kill();
        await vm.stop(0, 0);
      }
    }
  });

  it('a name the registry already has: Register fails, the started qemu is stopped, nothing is left', async () => {
    const name = `vmdup-${process.pid}`;
    registry.machines.set(name, { name, class: 'container' });
    try {
      const stderr = new Capture();
      const t0 = performance.now();
      const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '-M', name, '--kvm=no', '--tpm=no', '--ram=128M', '--console=read-only', `--linux=${files.kernel}`, `--initrd=${files.initrd}`], {
        stdout: new Capture(),
        stderr,
        signals: false,
      });
      expect(code).toBe(1);
      expect(stderr.text).toMatch(new RegExp(`cannot register machine ${name} .*io\\.systemd\\.Machine\\.MachineExists`));
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect(leftovers(runtime, name)).toEqual([]);
    } finally {
      registry.machines.delete(name);
    }
  });

  it('vmMain: berth-spawn --vm runs a machine (user-mode network) to ready and returns 0 after a stop', async () => {
    const name = `vmm-${process.pid}`;
    const stdout = new Capture();
    const stderr = new Capture();
    let readyMs = -1;
    const code = await vmMain(
      [
        '--vm', `--runtime-dir=${runtime}`, `--machine=${name}`, '--ram=256M', '--console=read-only',
        `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`, '--set-credential=k:v', '--network-user-mode', 'quiet',
      ],
      {
        stdout,
        stderr,
        signals: false,
        onReady: (vm, ms) => {
          readyMs = ms;
          expect(registry.machines.has(name)).toBe(true);
          void vm.stop(1500, 3000);
        },
      },
    );
    console.log(`vmMain ${name}: ready after ${Math.round(readyMs)} ms`);
    expect(code).toBe(0);
    expect(readyMs).toBeGreaterThan(0);
    expect(stderr.text).toContain(`machine ${name} ready after`);
    expect(stdout.text).toContain('VMTEST-CRED k=v');
    expect(stdout.text).toContain('VMTEST-VIRTIO 0x0001'); // the user-mode NIC
    expect(registry.machines.has(name)).toBe(false);
    expect(leftovers(runtime, name)).toEqual([]);
  });
});

describe.skipIf(skipReason !== undefined)('options that need host helpers, where this host has them', () => {
  const files = guest as { kernel: string; initrd: string };
  let dir: string;
  let runtime: string;
  let overlay: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-vm-opt-'));
    runtime = join(dir, 'run');
    overlay = join(dir, 'overlay.cpio');
    writeCpio(overlay, { init: GUEST_INIT });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('user and tap networking, extra drives, a virtiofs share and a TPM reach the guest', async () => {
    const name = `vmo-${process.pid}`;
    const share = join(dir, 'share');
    mkdirSync(share);
    writeFileSync(join(share, 'marker'), 'shared-from-host\n');
    const raw = join(dir, 'extra.raw');
    const raw2 = join(dir, 'extra2.img');
    writeFileSync(raw, Buffer.alloc(1024 * 1024));
    writeFileSync(raw2, Buffer.alloc(1024 * 1024));
    const haveTap = existsSync('/dev/net/tun');
    const haveTpm = findExecutable('swtpm') !== undefined;
    // a TPM with an ELF kernel + initrd breaks ACPI in qemu (the launcher refuses it), so boot the bzImage then
    const bzImage = join(dirname(files.kernel), 'vmlinuz');
    const kernel = haveTpm && existsSync(bzImage) ? bzImage : files.kernel;
    const tpm = kernel === bzImage ? 'yes' : 'no';
    const args = [
      '--vm', `--runtime-dir=${runtime}`, '-M', name, '--ram=256M', '--console=read-only', '--register=no', '--kvm=no', `--tpm=${tpm}`,
      `--linux=${kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`,
      haveTap ? '--network-tap' : '--network-user-mode', `--extra-drive=${raw}`, `--extra-drive=raw:${raw2}`, `--bind-ro=${share}:/mnt/share`, 'quiet',
    ];
    let consoleText = '';
    const vm = await launchVm(parseVmOptions(args), { info: () => {}, console: (d) => void (consoleText += d.toString()), qemuStderr: () => {} });
    try {
      const readyMs = await vm.waitReady(60_000);
      console.log(`VM ${name} (${kernel.endsWith('vmlinuz') ? 'bzImage' : 'ELF'}, tpm=${tpm}, ${haveTap ? 'tap' : 'user'} net): ready after ${Math.round(readyMs)} ms`);
      await waitFor(() => consoleText.includes('VMTEST-READY'), 10_000, 'the guest report');
      const virtio = [...consoleText.matchAll(/VMTEST-VIRTIO (0x[0-9a-f]+)/g)].map((m) => Number(m[1]));
      expect(virtio.filter((t) => t === 2)).toHaveLength(2); // two virtio-blk
      expect(virtio.filter((t) => t === 1)).toHaveLength(1); // one virtio-net
      expect(virtio.filter((t) => t === 26)).toHaveLength(1); // one virtio-fs
      expect(consoleText).toContain('systemd.mount-extra=mnt0:/mnt/share:virtiofs:ro');
      if (consoleText.includes('VMTEST-SHARE ')) expect(consoleText).toContain('VMTEST-SHARE shared-from-host');
      else console.warn('virtiofs share not mounted in the guest: its initramfs has no fuse/virtiofs modules');
      if (tpm === 'yes') expect(consoleText).toContain('VMTEST-TPM present');
      if (haveTap) expect(existsSync(`/sys/class/net/${tapName(name)}`)).toBe(true);
      const exit = await vm.stop(consoleText.includes('VMTEST-POWERBUTTON armed') ? 10_000 : 1500, 3000);
      expect(exit.exitCode).toBe(0);
      if (haveTap) expect(existsSync(`/sys/class/net/${tapName(name)}`)).toBe(false);
      expect(leftovers(runtime, name)).toEqual([]);
    } finally {
      vm.kill();
      await vm.stop(0, 0);
    }
  });

  it.each([
    ['--vsock=yes', () => !existsSync('/dev/vhost-vsock'), /--vsock: vhost-vsock is not usable here/],
    ['--forward-journal=/var/tmp/berth-journal', () => !existsSync('/dev/vhost-vsock'), /--forward-journal: the journal is forwarded over vsock/],
    ['--pass-ssh-key=yes', () => !existsSync('/dev/vhost-vsock'), /--pass-ssh-key=yes: SSH to the guest goes over vsock/],
    ['--console=gui', () => true, /--console=gui: no graphical display/],
    ['--tpm=yes', () => true, /--tpm=yes: (swtpm not found|a TPM breaks ACPI)/],
  ])('%s fails at once naming what the host lacks', async (opt, applies, message) => {
    if (!applies()) {
      console.warn(`${opt}: not applicable, this host has what it needs`);
      return expect(applies()).toBe(false);
    }
    const stderr = new Capture();
    const t0 = performance.now();
    const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '-M', 'lacks', '--kvm=no', '--console=read-only', opt, `--linux=${files.kernel}`, `--initrd=${files.initrd}`], {
      stdout: new Capture(),
      stderr,
      signals: false,
      settings: { env: { PATH: process.env.PATH } }, // no DISPLAY
    });
    expect(code).toBe(1);
    expect(stderr.text).toMatch(message);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(leftovers(runtime, 'lacks')).toEqual([]);
  });

  it('--image without UEFI firmware descriptors names the package', async () => {
    if (listFirmwareFiles().length > 0) {
      console.warn('--image without firmware not applicable: firmware descriptors are installed');
      return expect(listFirmwareFiles().length).toBeGreaterThan(0);
    }
    const img = join(dir, 'disk.raw');
    writeFileSync(img, Buffer.alloc(512));
    const stderr = new Capture();
    const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '--kvm=no', `--image=${img}`], { stdout: new Capture(), stderr, signals: false });
    expect(code).toBe(1);
    expect(stderr.text).toMatch(/no UEFI firmware for x86_64 found .*install ovmf/);
    expect(leftovers(runtime, 'disk')).toEqual([]);
  });

  it('--image boots UEFI firmware chosen from the descriptors (when ovmf is installed)', async () => {
    const descriptors = listFirmwareFiles();
    const stdout = new Capture();
    expect((await vmMain(['--vm', '--firmware=list'], { stdout, stderr: new Capture(), signals: false }))).toBe(0);
    expect(stdout.text.split('\n').filter(Boolean)).toEqual(descriptors);
    if (descriptors.length === 0) {
      console.warn('UEFI boot not tested: no firmware descriptors (apt-get install ovmf)');
      return;
    }
    const img = join(dir, 'blank.raw');
    writeFileSync(img, Buffer.alloc(16 * 1024 * 1024));
    let consoleText = '';
    const vm = await launchVm(parseVmOptions(['--vm', `--runtime-dir=${runtime}`, '--kvm=no', '--tpm=no', '--register=no', '--console=read-only', '--ram=256M', '--notify-ready=no', `--image=${img}`, 'x=1']), {
      info: () => {},
      console: (d) => void (consoleText += d.toString()),
      qemuStderr: () => {},
    });
    try {
      const argv = JSON.parse(readFileSync(join(vm.runDir, 'qemu.argv'), 'utf8')) as string[];
      expect(argv.some((a) => a.startsWith('if=pflash,') && a.includes('readonly=on'))).toBe(true);
      expect(argv).toContain(`file=${join(vm.runDir, 'efi-vars.fd')}`.replace(/^/, 'if=pflash,format=raw,'));
      const smbios = readdirSync(join(vm.runDir, 'smbios')).map((f) => readFileSync(join(vm.runDir, 'smbios', f), 'utf8'));
      expect(smbios).toEqual(['io.systemd.stub.kernel-cmdline-extra=x=1', 'io.systemd.boot.kernel-cmdline-extra=x=1']);
      // the firmware runs: with an empty disk it ends up in its boot manager / shell
      await waitFor(() => /BdsDxe|UEFI Interactive Shell/.test(consoleText), 60_000, 'UEFI firmware output');
    } finally {
      await vm.stop(500, 3000);
    }
    expect(leftovers(runtime, 'blank')).toEqual([]);
  });

  it('--private-users with a virtiofsd that cannot translate UIDs', async () => {
    const vfs = findVirtiofsd();
    if (!vfs) {
      console.warn('--private-users case: no virtiofsd here');
      const stderr = new Capture();
      const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '--kvm=no', '--bind=/tmp', `--linux=${files.kernel}`], { stdout: new Capture(), stderr, signals: false });
      expect(code).toBe(1);
      return expect(stderr.text).toMatch(/virtiofsd not found/);
    }
    const stderr = new Capture();
    const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '-M', 'pu', '--kvm=no', '--private-users=524288:65536', '--bind=/tmp', `--linux=${files.kernel}`], {
      stdout: new Capture(),
      stderr,
      signals: false,
    });
    if (code === 1) expect(stderr.text).toMatch(/--private-users: .* cannot translate UIDs/);
    else expect(code).toBe(0);
    expect(leftovers(runtime, 'pu')).toEqual([]);
  });
});

describe.skipIf(skipReason !== undefined)('bad input fails fast and leaves nothing behind', () => {
  const files = guest as { kernel: string; initrd: string };
  let runtime: string;
  beforeAll(() => {
    runtime = mkdtempSync(join(tmpdir(), 'berth-vm-bad-'));
  });
  afterAll(() => rmSync(runtime, { recursive: true, force: true }));

  async function run(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; err: string; ms: number }> {
    const stdout = new Capture();
    const stderr = new Capture();
    const t0 = performance.now();
    const code = await vmMain(['--vm', `--runtime-dir=${runtime}`, '--console=read-only', ...args], {
      stdout,
      stderr,
      signals: false,
      settings: env ? { env } : undefined,
    });
    return { code, err: stderr.text, ms: performance.now() - t0 };
  }

  it('qemu missing', async () => {
    const r = await run(['-M', 'bad-noqemu', `--linux=${files.kernel}`], { PATH: join(runtime, 'empty-path') });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/qemu not found.*install qemu-system-x86/);
    expect(r.ms).toBeLessThan(10_000);
    expect(leftovers(runtime, 'bad-noqemu')).toEqual([]);
  });

  it('kernel missing', async () => {
    const r = await run(['-M', 'bad-nokernel', `--linux=${join(runtime, 'no-such-vmlinux')}`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`--linux: no such file: ${join(runtime, 'no-such-vmlinux')}`);
    expect(r.ms).toBeLessThan(10_000);
    expect(leftovers(runtime, 'bad-nokernel')).toEqual([]);
  });

  it('--kvm=yes where KVM does not work', async () => {
    const probe = await probeKvm(findQemu(), undefined);
    if (probe.works) {
      console.warn(`--kvm=yes case not applicable: KVM works on this host (${probe.detail})`);
      return expect(probe.works).toBe(true);
    }
    const r = await run(['-M', 'bad-kvm', '--kvm=yes', `--linux=${files.kernel}`, `--initrd=${files.initrd}`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('--kvm=yes: KVM does not work on this host');
    expect(r.ms).toBeLessThan(10_000);
    expect(leftovers(runtime, 'bad-kvm')).toEqual([]);
  });

  it('--register=yes without a registry stops the qemu it started', async () => {
    const r = await run(['-M', 'bad-noreg', '--kvm=no', '--register=yes', '--ram=128M', `--linux=${files.kernel}`, `--initrd=${files.initrd}`]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot register machine bad-noreg/);
    expect(r.ms).toBeLessThan(10_000);
    expect(leftovers(runtime, 'bad-noreg')).toEqual([]);
  });

  it('qemu refusing its arguments is reported with its own message', async () => {
    const r = await run(['-M', 'bad-qemu', '--kvm=no', '--cpus=1024', `--linux=${files.kernel}`]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/qemu exited during startup \(exit status 1\): .+/);
    expect(r.ms).toBeLessThan(10_000);
    expect(leftovers(runtime, 'bad-qemu')).toEqual([]);
  });
});

describe.skipIf(skipReason !== undefined)('KVM probe guest', () => {
  it('runs to its end under TCG (so a KVM failure is the accelerator, not the probe)', async () => {
    const r = await runProbeGuest(findQemu(), 'tcg', 10_000);
    expect(r.works, r.detail).toBe(true);
    expect(KVM_PROBE_EXIT).toBe(85);
  });

  it('caches its answer per boot and qemu binary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-kvm-cache-'));
    try {
      const cache = join(dir, 'probe.json');
      const first = await probeKvm(findQemu(), cache);
      if (!existsSync('/dev/kvm')) {
        expect(first.detail).toContain('does not exist');
        return;
      }
      expect(first.cached).toBe(false);
      const second = await probeKvm(findQemu(), cache);
      expect(second.cached).toBe(true);
      expect(second.works).toBe(first.works);
      expect(readdirSync(dir)).toEqual(['probe.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
