#!/usr/bin/env node
/**
 * berth-spawn: start an OS container (or, with --vm, a VM) the way systemd-nspawn/vmspawn do, supervise
 * it until it ends, and exit with nspawn's codes (poweroff 0, reboot 133, failure: PID 1's status).
 *
 *   berth-spawn -D DIR [-M NAME] [OPTIONS…] [--boot [INIT ARGS…] | COMMAND…]
 *   berth-spawn --vm [VM OPTIONS…] [KERNEL ARGUMENTS…]
 *
 * This file parses the command line (spawn-container-args.ts, spawn-vm-args.ts), answers --help and usage
 * errors, and hands the parsed options to the launcher: src/launcher/container/main.ts or
 * src/launcher/vm/main.ts, each loaded only when it is needed.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseSpawnArgs, UsageError, type SpawnArgs } from './spawn-container-args.js';
import { parseVmOptions, VM_HELP } from './spawn-vm-args.js';
import { VmUsageError } from '../launcher/vm/options.js';
import type { VmMainIo } from '../launcher/vm/main.js';
import { VERSION } from '../domain/version.js';

const PROG = 'berth-spawn';

export const HELP = `${PROG} -D DIR [OPTIONS...] [--boot [ARGS...] | COMMAND [ARGS...]]
${PROG} --vm [VM OPTIONS...]        (see ${PROG} --vm --help)

Start an OS container from a directory tree, in its own user, PID, mount, UTS, IPC and cgroup
namespaces, in the cgroup scope machine.slice/machine-NAME.scope, registered with berthd.

  -D --directory=PATH        root directory of the container (required)
  -M --machine=NAME          machine name (default: the directory's last component)
     --uuid=UUID             container UUID (container_uuid=, machine ID of a fresh tree)
  -b --boot                  run the tree's init (systemd) instead of a command
  -U                         same as --private-users=pick
     --private-users=MODE    pick | yes | no | identity | SHIFT[:RANGE]   (default: no)
     --bind=SRC[:DST]        bind-mount a host path (":" in paths as "\\:")
     --bind-ro=SRC[:DST]     the same, read-only
  -E --setenv=NAME[=VALUE]   environment variable for PID 1
     --set-credential=ID:VALUE   credential in $CREDENTIALS_DIRECTORY (C escapes allowed)
     --load-credential=ID:PATH   credential read from a file
     --link-journal=MODE     no | host | try-host | guest | try-guest | auto
  -j                         same as --link-journal=try-guest
  -n --network-veth          veth pair: host0 inside, ve-NAME outside
     --container-ttys=LIST   comma-separated extra ttys (container_ttys=, e.g. pts/1)
     --notify-ready=BOOL     wait for READY=1 from PID 1 (default: yes with --boot, no otherwise)
     --kill-signal=SIGNAL    signal for a clean stop (default: SIGRTMIN+3)
     --stop-timeout=SECONDS  after that, kill every process of the scope (default: 10)
     --register=MODE         yes | no | auto: register with berthd (auto: if it runs; default)
     --runtime-dir=PATH      runtime directory prefix (default: /run)
  -q --quiet                 no status messages
     --vm                    start a virtual machine instead (options of systemd-vmspawn)
  -h --help                  this text
     --version               print the version

Sockets passed in with LISTEN_FDS/LISTEN_PID are handed to PID 1 as fds 3… (LISTEN_PID=1).
Exit status: 0 when the container powered off, 133 when it rebooted, otherwise PID 1's status.
`;

/** The VM launcher, loaded only for VMs: the container path never pays for it. */
async function vmLauncher(): Promise<typeof import('../launcher/vm/main.js')> {
  // From the bundle (dist/bin/) the VM launcher is the compiled module under dist/src/.
  const vmModule = import.meta.url.endsWith('.mjs') ? '../src/launcher/vm/main.js' : '../launcher/vm/main.js';
  return (await import(vmModule)) as typeof import('../launcher/vm/main.js');
}

/** `berth-spawn --vm …`: parse, answer --help and --firmware=list, or run the VM. */
export async function vmMain(argv: string[], io: VmMainIo = { stdout: process.stdout, stderr: process.stderr, signals: true }): Promise<number> {
  let opts;
  try {
    opts = parseVmOptions(argv);
  } catch (e) {
    if (e instanceof VmUsageError) {
      io.stderr.write(`${PROG}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  if (opts.help) {
    io.stdout.write(VM_HELP);
    return 0;
  }
  if (opts.version) {
    io.stdout.write(`${PROG} ${VERSION}\n`);
    return 0;
  }
  const vm = await vmLauncher();
  if (opts.firmwareList) {
    for (const f of vm.listFirmwareFiles()) io.stdout.write(`${f}\n`);
    return 0;
  }
  return vm.runVm(opts, io);
}

export async function main(argv: string[]): Promise<number> {
  let args: SpawnArgs;
  try {
    args = parseSpawnArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`${PROG}: ${e.message}\n`); return 1; }
    throw e;
  }
  if (args.vm) return vmMain(argv);
  if (args.help) { process.stdout.write(HELP); return 0; }
  if (args.version) { process.stdout.write(`${PROG} ${VERSION}\n`); return 0; }
  const { runContainer } = await import('../launcher/container/main.js');
  return runContainer({ options: args.options!, stopTimeoutMs: args.stopTimeoutMs });
}

function isEntryPoint(): boolean {
  const a = process.argv[1];
  if (!a) return false;
  try { return import.meta.url === pathToFileURL(fs.realpathSync(a)).href; } catch { return false; }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`${PROG}: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}
