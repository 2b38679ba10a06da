// What a VM launch needs, as `berth-spawn --vm`'s command line resolves it (the options of systemd-vmspawn(1)):
// the VmOptions type, its defaults, and the error a bad option is refused with. The command line itself is
// parsed in src/client/spawn-vm-args.ts.

import type { BindMount } from '../../domain/option-values.js';
import { DEFAULT_RUNTIME_DIR } from '../../domain/runtime-paths.js';

export type Tristate = 'yes' | 'no' | 'auto';
export type ConsoleMode = 'interactive' | 'read-only' | 'native' | 'gui';
export const CONSOLE_MODES: readonly ConsoleMode[] = ['interactive', 'read-only', 'native', 'gui'];
export const SSH_KEY_TYPES = ['ed25519', 'rsa', 'ecdsa', 'ecdsa-sk', 'ed25519-sk'] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

export type { BindMount };

export interface CredentialSource {
  id: string;
  /** --set-credential: the value; --load-credential: undefined, read from path */
  value?: Buffer;
  path?: string;
}

export interface Credential {
  id: string;
  value: Buffer;
}

export interface VmOptions {
  image?: string;
  directory?: string;
  cpus: number;
  ramBytes: number;
  kvm: Tristate;
  vsock: Tristate;
  vsockCid?: number;
  tpm: Tristate;
  linux?: string;
  initrds: string[];
  firmware?: string;
  firmwareList: boolean;
  secureBoot: Tristate;
  networkTap: boolean;
  networkUserMode: boolean;
  privateUsers?: { shift: number; range: number };
  binds: BindMount[];
  extraDrives: { path: string; format: 'raw' | 'qcow2' }[];
  forwardJournal?: string;
  /** undefined = default (on when vsock is usable), true/false = said so explicitly */
  passSshKey?: boolean;
  sshKeyType: SshKeyType;
  console: ConsoleMode;
  background?: string;
  credentials: CredentialSource[];
  smbios11: string[];
  notifyReady: boolean;
  machine?: string;
  uuid?: string;
  register: Tristate;
  quiet: boolean;
  runtimeDir: string;
  help: boolean;
  /** --version */
  version: boolean;
  /** --discard-disk: let the guest's discard (TRIM) requests free space in the image (vmspawn's default: yes) */
  discardDisk: boolean;
  /** positional arguments: extra kernel command line */
  kernelCmdline: string[];
}

export class VmUsageError extends Error {
  override name = 'VmUsageError';
}

export function defaultVmOptions(): VmOptions {
  return {
    cpus: 1,
    ramBytes: 2 * 1024 ** 3,
    kvm: 'auto',
    vsock: 'auto',
    tpm: 'auto',
    initrds: [],
    firmwareList: false,
    secureBoot: 'auto',
    networkTap: false,
    networkUserMode: false,
    binds: [],
    extraDrives: [],
    sshKeyType: 'ed25519',
    console: 'interactive',
    credentials: [],
    smbios11: [],
    notifyReady: true,
    register: 'auto',
    quiet: false,
    runtimeDir: DEFAULT_RUNTIME_DIR,
    help: false,
    version: false,
    discardDisk: true,
    kernelCmdline: [],
  };
}
