// `berth-spawn --vm`'s command line: the table of systemd-vmspawn's options, the parser that walks argv
// (long, short, clustered and attached forms; options end at the first argument that is not one), the checks
// of options against each other, the default machine name, and the --help text. Pure: files named by
// --load-credential are read at launch (src/launcher/vm/credentials.ts).

import { isAbsolute } from 'node:path';
import { defaultMachineName, defaultNameRefusal, isValidMachineName, machineNameRefusal } from '../domain/machine-name.js';
import {
  CONSOLE_MODES, defaultVmOptions, SSH_KEY_TYPES, VmUsageError, type ConsoleMode, type CredentialSource, type SshKeyType, type VmOptions,
} from '../launcher/vm/options.js';
import {
  parseBind, parseBoolean, parseExtraDrive, parseSize, parseTristate, parseUnsigned, parseUuid, splitCredential, unescapeC,
} from './spawn-vm-values.js';

type Handler = (o: VmOptions, value: string | undefined, name: string) => void;
interface Spec {
  /** takes a value: 'required' (--x=V or --x V), 'optional' (--x or --x=V only), 'none' */
  arg: 'required' | 'optional' | 'none';
  handle: Handler;
}

const specs: Record<string, Spec> = {
  help: { arg: 'none', handle: (o) => void (o.help = true) },
  version: { arg: 'none', handle: (o) => void (o.version = true) },
  'discard-disk': { arg: 'optional', handle: (o, v, n) => void (o.discardDisk = v === undefined ? true : parseBoolean(v, n)) },
  vm: { arg: 'none', handle: () => {} }, // berth-spawn's own switch into this mode
  image: { arg: 'required', handle: (o, v) => void (o.image = v) },
  directory: { arg: 'required', handle: (o, v) => void (o.directory = v) },
  cpus: { arg: 'required', handle: (o, v, n) => void (o.cpus = parseUnsigned(v!, n, 1, 1024)) },
  ram: { arg: 'required', handle: (o, v, n) => void (o.ramBytes = parseSize(v!, n)) },
  kvm: { arg: 'optional', handle: (o, v, n) => void (o.kvm = parseTristate(v, n)) },
  vsock: { arg: 'optional', handle: (o, v, n) => void (o.vsock = parseTristate(v, n)) },
  'vsock-cid': {
    arg: 'required',
    handle: (o, v, n) => {
      if (v === '' || v === 'auto') o.vsockCid = undefined;
      // 0, 1 and 2 are the hypervisor, local and host; 0xFFFFFFFF is "any"
      else o.vsockCid = parseUnsigned(v!, n, 3, 0xfffffffe);
    },
  },
  tpm: { arg: 'optional', handle: (o, v, n) => void (o.tpm = parseTristate(v, n)) },
  linux: { arg: 'required', handle: (o, v) => void (o.linux = v) },
  initrd: { arg: 'required', handle: (o, v) => void o.initrds.push(v!) },
  firmware: {
    arg: 'required',
    handle: (o, v) => {
      if (v === 'list') o.firmwareList = true;
      else o.firmware = v;
    },
  },
  'secure-boot': { arg: 'optional', handle: (o, v, n) => void (o.secureBoot = parseTristate(v, n)) },
  'network-tap': { arg: 'none', handle: (o) => void (o.networkTap = true) },
  'network-user-mode': { arg: 'none', handle: (o) => void (o.networkUserMode = true) },
  'private-users': {
    arg: 'required',
    handle: (o, v, n) => {
      const m = /^([0-9]+)(?::([0-9]+))?$/.exec(v!);
      if (!m) throw new VmUsageError(`${n}: expected UID_SHIFT[:UID_RANGE], got "${v}"`);
      const shift = parseUnsigned(m[1]!, n, 0, 0xfffffffe);
      const range = m[2] === undefined ? 0x10000 : parseUnsigned(m[2], n, 1, 0xffffffff - shift);
      o.privateUsers = { shift, range };
    },
  },
  bind: { arg: 'required', handle: (o, v, n) => void o.binds.push(parseBind(v!, n, false)) },
  'bind-ro': { arg: 'required', handle: (o, v, n) => void o.binds.push(parseBind(v!, n, true)) },
  'extra-drive': { arg: 'required', handle: (o, v) => void o.extraDrives.push(parseExtraDrive(v!)) },
  'forward-journal': { arg: 'required', handle: (o, v) => void (o.forwardJournal = v) },
  'pass-ssh-key': { arg: 'optional', handle: (o, v, n) => void (o.passSshKey = v === undefined ? true : parseBoolean(v, n)) },
  'ssh-key-type': {
    arg: 'required',
    handle: (o, v, n) => {
      if (!(SSH_KEY_TYPES as readonly string[]).includes(v!))
        throw new VmUsageError(`${n}: unknown key type "${v}" (one of ${SSH_KEY_TYPES.join(', ')})`);
      o.sshKeyType = v as SshKeyType;
    },
  },
  console: {
    arg: 'required',
    handle: (o, v, n) => {
      if (!CONSOLE_MODES.includes(v as ConsoleMode)) throw new VmUsageError(`${n}: unknown mode "${v}" (one of ${CONSOLE_MODES.join(', ')})`);
      o.console = v as ConsoleMode;
    },
  },
  background: {
    arg: 'required',
    handle: (o, v, n) => {
      if (v && !/^[0-9;:/#A-Za-z]*$/.test(v)) throw new VmUsageError(`${n}: not an ANSI color: "${v}"`);
      o.background = v || undefined;
    },
  },
  'load-credential': {
    arg: 'required',
    handle: (o, v, n) => {
      const [id, path] = splitCredential(v!, n);
      if (!path) throw new VmUsageError(`${n}: empty path for credential "${id}"`);
      addCredential(o, { id, path }, n);
    },
  },
  'set-credential': {
    arg: 'required',
    handle: (o, v, n) => {
      const [id, value] = splitCredential(v!, n);
      addCredential(o, { id, value: unescapeC(value, n) }, n);
    },
  },
  smbios11: { arg: 'required', handle: (o, v) => void o.smbios11.push(v!) },
  'notify-ready': { arg: 'required', handle: (o, v, n) => void (o.notifyReady = parseBoolean(v!, n)) },
  machine: {
    arg: 'required',
    handle: (o, v, n) => {
      if (!isValidMachineName(v!)) throw new VmUsageError(machineNameRefusal(v!));
      o.machine = v;
    },
  },
  uuid: { arg: 'required', handle: (o, v, n) => void (o.uuid = parseUuid(v!, n)) },
  register: { arg: 'required', handle: (o, v, n) => void (o.register = parseTristate(v, n)) },
  quiet: { arg: 'none', handle: (o) => void (o.quiet = true) },
  'runtime-dir': {
    arg: 'required',
    handle: (o, v, n) => {
      if (!v || !isAbsolute(v)) throw new VmUsageError(`${n}: must be an absolute path`);
      o.runtimeDir = v;
    },
  },
};

const shortOptions: Record<string, string> = { h: 'help', D: 'directory', i: 'image', M: 'machine', n: 'network-tap', q: 'quiet' };

function addCredential(o: VmOptions, c: CredentialSource, name: string): void {
  if (o.credentials.some((x) => x.id === c.id)) throw new VmUsageError(`${name}: duplicate credential "${c.id}"`);
  o.credentials.push(c);
}

/**
 * Parses berth-spawn's arguments in VM mode. Options end at the first argument that is not one (or at "--");
 * everything after is extra kernel command line, as vmspawn does.
 */
export function parseVmOptions(argv: readonly string[]): VmOptions {
  const o = defaultVmOptions();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = specs[key];
      const name = `--${key}`;
      if (!spec) throw new VmUsageError(`unknown option ${name} (see --help)`);
      let value: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
      if (spec.arg === 'none' && value !== undefined) throw new VmUsageError(`${name} takes no value`);
      if (spec.arg === 'required' && value === undefined) {
        if (i + 1 >= argv.length) throw new VmUsageError(`${name} needs a value`);
        value = argv[++i]!;
      }
      spec.handle(o, value, name);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // short options, possibly clustered (-qn) or with an attached value (-Mfoo)
      for (let j = 1; j < a.length; j++) {
        const long = shortOptions[a[j]!];
        if (!long) throw new VmUsageError(`unknown option -${a[j]} (see --help)`);
        const spec = specs[long]!;
        if (spec.arg === 'none') {
          spec.handle(o, undefined, `-${a[j]}`);
          continue;
        }
        let value = a.slice(j + 1);
        if (!value) {
          if (i + 1 >= argv.length) throw new VmUsageError(`-${a[j]} needs a value`);
          value = argv[++i]!;
        }
        spec.handle(o, value, `-${a[j]}`);
        break;
      }
      continue;
    }
    break;
  }
  o.kernelCmdline = argv.slice(i);
  validate(o);
  return o;
}

function validate(o: VmOptions): void {
  if (o.help || o.version || o.firmwareList) return;
  if (o.image && o.directory) throw new VmUsageError('--image and --directory are mutually exclusive');
  if (o.networkTap && o.networkUserMode) throw new VmUsageError('--network-tap and --network-user-mode are mutually exclusive');
  if (o.vsockCid !== undefined && o.vsock === 'no') throw new VmUsageError('--vsock-cid needs vsock (--vsock=no was given)');
  if (o.privateUsers && !o.directory && o.binds.length === 0)
    throw new VmUsageError('--private-users only applies to --directory and --bind (the shares virtiofsd serves)');
  if (o.secureBoot === 'yes' && o.linux) throw new VmUsageError('--secure-boot=yes needs firmware boot, not --linux direct kernel boot');
  if (o.initrds.length > 0 && !o.linux) throw new VmUsageError('--initrd needs --linux (direct kernel boot)');
  if (!o.image && !o.directory && !o.linux)
    throw new VmUsageError('nothing to boot: give --image, --directory or --linux');
  if (o.directory && !o.linux)
    throw new VmUsageError('--directory needs --linux: berth does not look for boot loader entries inside the directory');
  if (!o.machine) {
    const from = o.image ?? o.directory ?? o.linux!;
    const name = defaultMachineName(from, /\.(raw|img|qcow2|efi)$/i);
    if (name === undefined) throw new VmUsageError(defaultNameRefusal(from));
    o.machine = name;
  }
}

export const VM_HELP = `berth-spawn --vm [OPTIONS...] [KERNEL ARGUMENTS...]

Boot a virtual machine under qemu, the way systemd-vmspawn does, and register it with berthd.

  -h --help                 show this help
     --version              show the version
  -i --image=PATH           disk image to boot (needs UEFI firmware unless --linux is given)
  -D --directory=PATH       directory to boot as the root file system over virtiofs (needs --linux)
     --cpus=N               number of virtual CPUs (default 1)
     --ram=BYTES            memory (default 2G)
     --kvm=BOOL|auto        hardware acceleration; auto = use it if a test boot succeeds here
     --vsock=BOOL|auto      AF_VSOCK device for the guest (needs /dev/vhost-vsock)
     --vsock-cid=CID        guest CID (default derived from the machine name)
     --tpm=BOOL|auto        software TPM (needs swtpm)
     --linux=PATH           kernel for a direct boot
     --initrd=PATH          initrd for the direct boot (repeatable; concatenated)
     --firmware=PATH|list   firmware descriptor (JSON) to use, or list those found
     --secure-boot=BOOL|auto  pick firmware with or without Secure Boot
  -n --network-tap          tap interface vt-NAME on the host
     --network-user-mode    user mode (slirp) networking
     --private-users=SHIFT[:RANGE]  UID shift for the directories virtiofsd serves
     --bind=SRC[:DST]       share a host directory with the guest (virtiofs)
     --bind-ro=SRC[:DST]    the same, read-only
     --extra-drive=[FORMAT:]PATH  additional disk
     --discard-disk=BOOL    pass the guest's discard requests on to the --image file (default yes)
     --forward-journal=PATH store the guest's journal on the host (needs vsock)
     --pass-ssh-key=BOOL    create an SSH key and pass its public half to the guest (needs vsock)
     --ssh-key-type=TYPE    ed25519, rsa, ecdsa, ecdsa-sk, ed25519-sk
     --console=MODE         interactive, read-only, native, gui
     --background=COLOR     ANSI background color for the interactive console
     --load-credential=ID:PATH  pass a credential read from a file
     --set-credential=ID:VALUE  pass a credential
     --smbios11=STRING      pass an SMBIOS type 11 string as is
     --notify-ready=BOOL    wait for READY=1 from the guest (default yes)
  -M --machine=NAME         machine name
     --uuid=UUID            SMBIOS system UUID (the guest's machine id)
     --register=BOOL|auto   register with berthd (auto: when it is running)
  -q --quiet                fewer messages
     --runtime-dir=PATH     runtime directory (default /run)
`;
