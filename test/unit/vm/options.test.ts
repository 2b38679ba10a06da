import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSize, parseUuid, unescapeC } from '../../../src/client/spawn-vm-values.js';
import { parseVmOptions } from '../../../src/client/spawn-vm-args.js';
import { resolveCredentials } from '../../../src/launcher/vm/credentials.js';
import { VmUsageError } from '../../../src/launcher/vm/options.js';

const K = ['--linux=/boot/vmlinux'];

describe('parseVmOptions', () => {
  it('takes --discard-disk (default yes) and --version', () => {
    expect(parseVmOptions(K).discardDisk).toBe(true);
    expect(parseVmOptions(['--discard-disk=no', ...K]).discardDisk).toBe(false);
    expect(parseVmOptions(['--discard-disk', ...K]).discardDisk).toBe(true);
    expect(() => parseVmOptions(['--discard-disk=maybe', ...K])).toThrow(VmUsageError);
    // --version needs nothing to boot, like --help.
    expect(parseVmOptions(['--version']).version).toBe(true);
  });

  it('has vmspawn defaults', () => {
    const o = parseVmOptions(K);
    expect(o).toMatchObject({ cpus: 1, ramBytes: 2 * 1024 ** 3, kvm: 'auto', vsock: 'auto', tpm: 'auto', console: 'interactive', register: 'auto', runtimeDir: '/run', sshKeyType: 'ed25519', machine: 'vmlinux' });
    expect(o.passSshKey).toBeUndefined();
  });

  it('accepts every option of the man page', () => {
    const o = parseVmOptions([
      '--vm', '--image=/x/disk.raw', '--cpus=4', '--ram', '512M', '--kvm=no', '--vsock=yes', '--vsock-cid=42', '--tpm=no',
      '--firmware=/usr/share/qemu/firmware/60-edk2.json', '--secure-boot=no', '--network-user-mode', '--bind=/srv', '--bind-ro=/a\\:b:/mnt/ab',
      '--extra-drive=qcow2:/x/extra', '--extra-drive=/x/e2.qcow2', '--forward-journal=/var/log/vm', '--pass-ssh-key=no', '--ssh-key-type=rsa',
      '--console=read-only', '--background=48;2;0;0;80', '--load-credential=a:/etc/hostname', '--set-credential=b:x\\ny', '-M', 'vm1',
      '--uuid=0F4E9C2A3B1D4E5F8A6B7C8D9E0F1A2B', '--register=no', '-q', '--private-users=65536:65536', 'systemd.unit=rescue.target', '--not-an-option',
    ]);
    expect(o).toMatchObject({
      image: '/x/disk.raw', cpus: 4, ramBytes: 512 * 1024 ** 2, kvm: 'no', vsock: 'yes', vsockCid: 42, tpm: 'no',
      firmware: '/usr/share/qemu/firmware/60-edk2.json', secureBoot: 'no', networkUserMode: true, forwardJournal: '/var/log/vm', passSshKey: false,
      sshKeyType: 'rsa', console: 'read-only', background: '48;2;0;0;80', machine: 'vm1', uuid: '0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b',
      register: 'no', quiet: true, privateUsers: { shift: 65536, range: 65536 },
    });
    expect(o.binds).toEqual([
      { source: '/srv', target: '/srv', readOnly: false },
      { source: '/a:b', target: '/mnt/ab', readOnly: true },
    ]);
    expect(o.extraDrives).toEqual([{ path: '/x/extra', format: 'qcow2' }, { path: '/x/e2.qcow2', format: 'qcow2' }]);
    expect(o.credentials).toEqual([{ id: 'a', path: '/etc/hostname' }, { id: 'b', value: Buffer.from('x\ny') }]);
    // options end at the first argument that is not one: the rest is kernel command line
    expect(o.kernelCmdline).toEqual(['systemd.unit=rescue.target', '--not-an-option']);
  });

  it('takes repeated --initrd in order, -D/-i/-n short options, and -- as the end of options', () => {
    const o = parseVmOptions(['-D', '/srv/root', '-n', '--linux', '/k', '--initrd=/a', '--initrd=/b', '--', '-x', 'y=1']);
    expect(o.directory).toBe('/srv/root');
    expect(o.networkTap).toBe(true);
    expect(o.initrds).toEqual(['/a', '/b']);
    expect(o.kernelCmdline).toEqual(['-x', 'y=1']);
    expect(parseVmOptions(['-i', '/x/a.qcow2']).image).toBe('/x/a.qcow2');
    expect(parseVmOptions(['-qMfoo', ...K])).toMatchObject({ quiet: true, machine: 'foo' });
  });

  it('--firmware=list needs nothing else', () => {
    expect(parseVmOptions(['--firmware=list']).firmwareList).toBe(true);
  });

  it.each([
    [['--cpus=0', ...K], /--cpus: 0 is out of range/],
    [['--cpus=two', ...K], /--cpus: expected a number/],
    [['--ram=lots', ...K], /--ram: cannot parse size/],
    [['--kvm=maybe', ...K], /--kvm: expected a boolean/],
    [['--console=serial', ...K], /--console: unknown mode "serial"/],
    [['--ssh-key-type=dsa', ...K], /--ssh-key-type: unknown key type "dsa"/],
    [['--vsock-cid=2', ...K], /--vsock-cid: 2 is out of range \[3, 4294967294\]/],
    [['-M', 'bad/name', ...K], /invalid machine name "bad\/name"/],
    [['--uuid=xyz', ...K], /--uuid: not a valid UUID/],
    [['--uuid=00000000-0000-0000-0000-000000000000', ...K], /null UUID/],
    [['--set-credential=novalue', ...K], /--set-credential: expected ID:VALUE/],
    [['--set-credential=a/b:x', ...K], /invalid credential name "a\/b"/],
    [['--set-credential=a:1', '--load-credential=a:/x', ...K], /duplicate credential "a"/],
    [['--set-credential=a:\\q', ...K], /unknown escape/],
    [['--bind=relative', ...K], /source must be an absolute path/],
    [['--bind=/a:/b:ro', ...K], /mount options are not supported/],
    [['--private-users=pick', '-D', '/r', ...K], /--private-users: expected UID_SHIFT/],
    [['--private-users=0', ...K], /only applies to --directory and --bind/],
    [['--image=/a', '-D', '/b', ...K], /mutually exclusive/],
    [['--network-tap', '--network-user-mode', ...K], /mutually exclusive/],
    [['--vsock=no', '--vsock-cid=5', ...K], /--vsock-cid needs vsock/],
    [['--secure-boot=yes', ...K], /--secure-boot=yes needs firmware boot/],
    [['--initrd=/i', '-M', 'x'], /--initrd needs --linux/],
    [['-M', 'x'], /nothing to boot/],
    [['-D', '/srv/root'], /--directory needs --linux/],
    [['--frobnicate', ...K], /unknown option --frobnicate/],
    [['-z', ...K], /unknown option -z/],
    [['--quiet=yes', ...K], /--quiet takes no value/],
    [['--linux'], /--linux needs a value/],
    [['--runtime-dir=rel', ...K], /--runtime-dir: must be an absolute path/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseVmOptions(argv)).toThrow(VmUsageError);
    expect(() => parseVmOptions(argv)).toThrow(message);
  });

  it('derives the machine name from the image, directory or kernel', () => {
    expect(parseVmOptions(['--image=/var/lib/machines/fedora.raw']).machine).toBe('fedora');
    expect(parseVmOptions(['-D', '/srv/deb12/', '--linux=/k']).machine).toBe('deb12');
    expect(() => parseVmOptions(['--linux=/boot/...'])).toThrow(/give -M NAME/);
  });
});

describe('value parsers', () => {
  it('sizes use base 1024', () => {
    expect(parseSize('1K', 'x')).toBe(1024);
    expect(parseSize('1.5G', 'x')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('2GiB', 'x')).toBe(2 * 1024 ** 3);
    expect(parseSize('4096', 'x')).toBe(4096);
    expect(() => parseSize('0', 'x')).toThrow(/out of range/);
  });
  it('UUIDs are normalised', () => {
    expect(parseUuid('0F4E9C2A-3B1D-4E5F-8A6B-7C8D9E0F1A2B')).toBe('0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b');
  });
  it('C escapes', () => {
    expect(unescapeC('a\\tb\\x41\\\\\\0', 'x')).toEqual(Buffer.from([0x61, 9, 0x62, 0x41, 0x5c, 0]));
  });
});

describe('resolveCredentials', () => {
  it('reads files, also from $CREDENTIALS_DIRECTORY, and names what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cred-'));
    try {
      writeFileSync(join(dir, 'tok'), Buffer.from([1, 2, 3]));
      const got = resolveCredentials([{ id: 'a', path: join(dir, 'tok') }, { id: 'b', path: 'tok' }, { id: 'c', value: Buffer.from('v') }], { CREDENTIALS_DIRECTORY: dir });
      expect(got).toEqual([
        { id: 'a', value: Buffer.from([1, 2, 3]) },
        { id: 'b', value: Buffer.from([1, 2, 3]) },
        { id: 'c', value: Buffer.from('v') },
      ]);
      expect(() => resolveCredentials([{ id: 'x', path: join(dir, 'nope') }], {})).toThrow(`--load-credential: no such file: ${join(dir, 'nope')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
