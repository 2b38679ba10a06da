// Test guest for the VM integration tests: the Debian kernel and busybox initramfs that `scripts/rootfs.sh vm`
// builds, plus a second initrd (an overlay cpio written here) whose /init prints what the guest received
// through SMBIOS type 11, DMI and the kernel command line, reports READY=1 on berth's virtio-serial port, and
// powers off when the ACPI power button is pressed (if the base image carries the button and evdev modules).

import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface GuestFiles {
  kernel: string;
  initrd: string;
}

/** The kernel and base initrd, or the reason the VM tests cannot run here. */
export function findGuest(): GuestFiles | { skip: string } {
  const qemu = (() => {
    try {
      return execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  })();
  if (!qemu) return { skip: 'qemu-system-x86_64 is not installed (scripts/setup.sh installs qemu-system-x86)' };
  if (process.getuid?.() !== 0) return { skip: 'not root: the VM tests create cgroups under /sys/fs/cgroup' };
  const cache = process.env.BERTH_CACHE ?? '/var/tmp/berth-cache';
  const kernel = process.env.BERTH_VM_KERNEL ?? join(cache, 'vm/vmlinux');
  const initrd = process.env.BERTH_VM_INITRD ?? join(cache, 'vm/initrd.cpio.gz');
  if (!existsSync(kernel) || !existsSync(initrd))
    return { skip: `no test kernel/initrd at ${kernel} and ${initrd} (run scripts/rootfs.sh vm)` };
  return { kernel, initrd };
}

export const GUEST_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "VMTEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "VMTEST-CMDLINE $(cat /proc/cmdline)"
echo "VMTEST-UUID $(cat /sys/class/dmi/id/product_uuid)"
# SMBIOS type 11: a 5-byte structure header, then NUL-terminated strings
for f in /sys/firmware/dmi/entries/11-*/raw; do
  [ -e "$f" ] || continue
  tail -c +6 "$f" | tr '\\0' '\\n' | grep -v '^$' | while IFS= read -r s; do
    echo "VMTEST-SMBIOS11 $s"
    case "$s" in
      io.systemd.credential.binary:*=*) kv=\${s#io.systemd.credential.binary:}; echo "VMTEST-CRED \${kv%%=*}=$(echo "\${kv#*=}" | base64 -d)" ;;
      io.systemd.credential:*=*) kv=\${s#io.systemd.credential:}; echo "VMTEST-CRED $kv" ;;
    esac
  done
done
[ -f /lib/modules/load-order ] && while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </lib/modules/load-order
for m in button evdev fuse virtiofs; do [ -e "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null; done
for d in /sys/class/input/event*; do
  [ -e "$d/device/name" ] || continue
  if [ "$(cat "$d/device/name")" = "Power Button" ]; then
    ev=/dev/input/$(basename "$d")
    (dd if="$ev" of=/dev/null bs=24 count=1 2>/dev/null; echo "VMTEST-POWERBUTTON pressed"; poweroff -f) &
    echo "VMTEST-POWERBUTTON armed $ev"
  fi
done
# virtiofs shares (when the image carries fuse + virtiofs): mount the first bind (tag mnt0) and show a marker
if grep -q virtiofs /proc/filesystems && mkdir -p /mnt/share && mount -t virtiofs mnt0 /mnt/share 2>/dev/null; then
  echo "VMTEST-SHARE $(cat /mnt/share/marker 2>/dev/null)"
fi
for d in /sys/bus/virtio/devices/*; do [ -e "$d/device" ] && echo "VMTEST-VIRTIO $(cat "$d/device")"; done
[ -e /sys/bus/acpi/devices/MSFT0101:00 ] && echo "VMTEST-TPM present"
port=""
for n in /sys/class/virtio-ports/*/name; do
  [ -e "$n" ] || continue
  [ "$(cat "$n")" = io.berth.notify ] && port=/dev/$(basename "$(dirname "$n")")
done
if [ -n "$port" ]; then
  printf 'STATUS=test guest up\\nREADY=1\\n' >"$port"
  echo "VMTEST-READY $port uptime=$(cut -d' ' -f1 /proc/uptime)"
else
  echo "VMTEST-NO-NOTIFY-PORT"
fi
while :; do sleep 3600; done
`;

/** Writes a newc cpio archive holding the given files (mode 0755 for /init, 0644 otherwise). */
export function writeCpio(path: string, files: Record<string, string | Buffer>): void {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name: string, data: Buffer, mode: number): void => {
    const nameBuf = Buffer.from(name + '\0');
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0').toUpperCase()).join(''), 'latin1');
    parts.push(header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length));
  };
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    entry(name, data, 0o100000 | (name === 'init' ? 0o755 : 0o644));
  }
  entry('TRAILER!!!', Buffer.alloc(0), 0);
  const all = Buffer.concat(parts);
  writeFileSync(path, Buffer.concat([all, Buffer.alloc((512 - (all.length % 512)) % 512)]));
}

export interface RecordedCall {
  method: string;
  parameters: Record<string, unknown>;
}

/** A stand-in io.systemd.Machine server at RUNTIME/systemd/machine/io.systemd.Machine that records calls. */
export class FakeRegistry {
  readonly calls: RecordedCall[] = [];
  readonly machines = new Map<string, Record<string, unknown>>();
  private server?: Server;

  constructor(readonly path: string) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    rmSync(this.path, { force: true });
    this.server = createServer((c) => {
      let buf = Buffer.alloc(0);
      c.on('error', () => {});
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        let i: number;
        while ((i = buf.indexOf(0)) >= 0) {
          const msg = JSON.parse(buf.subarray(0, i).toString()) as { method: string; parameters?: Record<string, unknown> };
          buf = buf.subarray(i + 1);
          const parameters = msg.parameters ?? {};
          this.calls.push({ method: msg.method, parameters });
          let reply: Record<string, unknown> = { parameters: {} };
          const name = String(parameters.name);
          if (msg.method === 'io.systemd.Machine.Register') {
            if (this.machines.has(name)) reply = { error: 'io.systemd.Machine.MachineExists', parameters: {} };
            else this.machines.set(name, parameters);
          } else if (msg.method === 'io.systemd.Machine.Unregister') {
            if (!this.machines.delete(name)) reply = { error: 'io.systemd.Machine.NoSuchMachine', parameters: {} };
          } else reply = { error: 'org.varlink.service.MethodNotFound', parameters: { method: msg.method } };
          c.write(JSON.stringify(reply) + '\0');
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(this.path, r));
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.path, { force: true });
  }
}

/** Polls `cond` until it holds or the deadline passes (no fixed sleeps). */
export async function waitFor(cond: () => boolean, deadlineMs: number, what: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** PIDs of processes (qemu, helpers) whose command line names this machine's run directory or qemu -name. */
export function machineProcesses(name: string, runtime: string): number[] {
  const runDir = `${runtime}/berth/vm/${name}/`;
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(e) || Number(e) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const qemuName = argv.indexOf('-name');
    if ((qemuName >= 0 && argv[qemuName + 1] === name && argv.some((a) => a.includes(runDir))) || argv.some((a) => a.startsWith(runDir))) out.push(Number(e));
  }
  return out;
}
