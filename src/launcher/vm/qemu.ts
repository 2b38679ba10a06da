// The qemu command line for a machine, built from a resolved plan. Pure: every path and decision comes in
// through QemuPlan, so unit tests can check the exact argv.

import { createHash } from 'node:crypto';
import type { ConsoleMode } from './options.js';

/** Port name of the virtio-serial channel the guest writes sd_notify-style lines to (no vsock needed). */
export const NOTIFY_PORT_NAME = 'io.berth.notify';

export interface FirmwareBoot {
  kind: 'firmware';
  codePath: string;
  codeFormat: string;
  /** writable copy of the NVRAM template, when the firmware has one */
  varsPath?: string;
  varsFormat?: string;
  secureBoot: boolean;
  requiresSmm: boolean;
}

export interface DirectBoot {
  kind: 'direct';
  kernel: string;
  initrd?: string;
  /** the full -append string */
  cmdline: string;
}

export interface VirtiofsShare {
  tag: string;
  socket: string;
}

export interface QemuPlan {
  name: string;
  uuid: string;
  accel: 'kvm' | 'tcg';
  cpus: number;
  ramBytes: number;
  boot: FirmwareBoot | DirectBoot;
  /** `discard`: pass the guest's discard requests on to the image file (--discard-disk) */
  image?: { path: string; format: 'raw' | 'qcow2'; discard?: boolean };
  extraDrives: { path: string; format: 'raw' | 'qcow2' }[];
  smbiosFiles: string[];
  /** unix socket the launcher listens on; qemu connects to it */
  qmpSocket: string;
  /** unix socket the launcher listens on; qemu connects the guest's virtio-serial port to it */
  notifySocket: string;
  console: ConsoleMode;
  network: 'none' | 'user' | 'tap';
  virtiofs: VirtiofsShare[];
  tpmSocket?: string;
  vsockCid?: number;
}

/** qemu's option syntax: a comma inside a value is written twice. */
export function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/** Host side of --network-tap: "vt-" + name, cut to the 15 characters an interface name may have. */
export function tapName(machine: string): string {
  return `vt-${machine}`.slice(0, 15);
}

/** A stable, locally administered unicast MAC for the guest's NIC, derived from the machine name. */
export function macFromName(machine: string): string {
  const h = createHash('sha256').update(`berth-vm-mac:${machine}`).digest();
  const b = [...h.subarray(0, 6)];
  b[0] = (b[0]! & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A guest CID derived from the machine name, in [3, 0xFFFFFFFE] (0-2 are reserved, 0xFFFFFFFF is "any"). */
export function cidFromName(machine: string): number {
  const h = createHash('sha256').update(`berth-vm-cid:${machine}`).digest();
  return 3 + (h.readUInt32LE(0) % (0xffffffff - 4));
}

/** Kernel command line for a direct boot: console first, root over virtiofs when booting a directory, then the user's extras. */
export function directBootCmdline(opts: {
  console: ConsoleMode;
  rootVirtiofs: boolean;
  binds: { tag: string; target: string; readOnly: boolean }[];
  extra: readonly string[];
}): string {
  const args: string[] = [];
  // ttyS0 rather than hvc0: virtio_console is a module in stock distribution kernels, the 8250 UART is built in.
  if (opts.console !== 'gui') args.push('console=ttyS0');
  if (opts.rootVirtiofs) args.push('root=root', 'rootfstype=virtiofs', 'rw');
  for (const b of opts.binds) args.push(`systemd.mount-extra=${b.tag}:${b.target}:virtiofs:${b.readOnly ? 'ro' : 'rw'}`);
  args.push(...opts.extra);
  return args.join(' ');
}

export function buildQemuArgv(plan: QemuPlan): string[] {
  const a: string[] = [];
  const machine = ['q35'];
  if (plan.boot.kind === 'firmware' && plan.boot.requiresSmm) machine.push('smm=on');
  if (plan.virtiofs.length > 0) machine.push('memory-backend=mem');
  a.push('-machine', machine.join(','));
  a.push('-accel', plan.accel);
  a.push('-cpu', plan.accel === 'kvm' ? 'host' : 'max');
  a.push('-smp', String(plan.cpus));
  const ramMiB = Math.ceil(plan.ramBytes / 1024 ** 2);
  a.push('-m', `${ramMiB}M`);
  if (plan.virtiofs.length > 0) a.push('-object', `memory-backend-memfd,id=mem,size=${ramMiB}M,share=on`);
  a.push('-nodefaults', '-no-user-config');
  a.push('-name', qemuEscape(plan.name));
  a.push('-uuid', plan.uuid);
  a.push('-object', 'rng-random,filename=/dev/urandom,id=rng0', '-device', 'virtio-rng-pci,rng=rng0');

  // control and readiness channels: the launcher listens, qemu connects (no polling for sockets to appear)
  a.push('-chardev', `socket,id=qmp,path=${qemuEscape(plan.qmpSocket)}`, '-mon', 'chardev=qmp,mode=control');
  a.push('-device', 'virtio-serial-pci,id=vser0');
  a.push('-chardev', `socket,id=notify,path=${qemuEscape(plan.notifySocket)}`);
  a.push('-device', `virtserialport,bus=vser0.0,chardev=notify,name=${NOTIFY_PORT_NAME}`);

  switch (plan.console) {
    case 'interactive':
      a.push('-display', 'none', '-chardev', 'stdio,id=console,mux=on,signal=off', '-serial', 'chardev:console');
      break;
    case 'read-only':
      a.push('-display', 'none', '-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console');
      break;
    case 'native':
      a.push('-display', 'none', '-chardev', 'stdio,id=console,mux=on,signal=off', '-serial', 'chardev:console');
      a.push('-mon', 'chardev=console,mode=readline');
      break;
    case 'gui':
      a.push('-vga', 'virtio', '-serial', 'vc');
      break;
  }

  for (const f of plan.smbiosFiles) a.push('-smbios', `type=11,path=${qemuEscape(f)}`);

  if (plan.boot.kind === 'direct') {
    a.push('-kernel', plan.boot.kernel);
    if (plan.boot.initrd) a.push('-initrd', plan.boot.initrd);
    if (plan.boot.cmdline) a.push('-append', plan.boot.cmdline);
  } else {
    const fw = plan.boot;
    a.push('-drive', `if=pflash,format=${fw.codeFormat},readonly=on,file=${qemuEscape(fw.codePath)}`);
    if (fw.varsPath) {
      if (fw.secureBoot) a.push('-global', 'ICH9-LPC.disable_s3=1', '-global', 'driver=cfi.pflash01,property=secure,value=on');
      a.push('-drive', `if=pflash,format=${fw.varsFormat ?? fw.codeFormat},file=${qemuEscape(fw.varsPath)}`);
    }
  }

  if (plan.image) {
    a.push('-drive', `if=none,id=root,file=${qemuEscape(plan.image.path)},format=${plan.image.format},discard=${plan.image.discard === false ? 'ignore' : 'unmap'}`);
    a.push('-device', `virtio-blk-pci,drive=root,bootindex=1`);
  }
  plan.extraDrives.forEach((d, i) => {
    a.push('-drive', `if=none,id=extra${i},file=${qemuEscape(d.path)},format=${d.format},discard=unmap`);
    a.push('-device', `virtio-blk-pci,drive=extra${i},serial=extra${i}`);
  });

  plan.virtiofs.forEach((s, i) => {
    a.push('-chardev', `socket,id=fs${i},path=${qemuEscape(s.socket)}`);
    a.push('-device', `vhost-user-fs-pci,queue-size=1024,chardev=fs${i},tag=${s.tag}`);
  });

  if (plan.network === 'user') a.push('-nic', `user,model=virtio-net-pci,mac=${macFromName(plan.name)}`);
  else if (plan.network === 'tap')
    a.push('-nic', `tap,ifname=${tapName(plan.name)},script=no,downscript=no,model=virtio-net-pci,mac=${macFromName(plan.name)}`);

  if (plan.tpmSocket) {
    a.push('-chardev', `socket,id=chrtpm,path=${qemuEscape(plan.tpmSocket)}`);
    a.push('-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', 'tpm-tis,tpmdev=tpm0');
  }
  if (plan.vsockCid !== undefined) a.push('-device', `vhost-vsock-pci,guest-cid=${plan.vsockCid}`);
  return a;
}
