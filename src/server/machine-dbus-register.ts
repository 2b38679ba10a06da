/**
 * The arguments of the D-Bus registrations (RegisterMachine*, CreateMachine*) read into the registry's
 * RegistrationSpec, with the same field rules as the Varlink Register (registry/field-rules.ts, the
 * machine-name rule) and machined's D-Bus wording for each refusal. `Create*` asks the registry to
 * allocate the scope (allocateUnit); the caller's scope properties go with it to systemd when systemd makes
 * the scope (after berth's own, so the caller's win, as under machined) and are not used otherwise.
 */
import { readFileSync, fstatSync } from 'node:fs';
import { errnoError, type Variant } from '../dbus/index.js';
import { isValidMachineName } from '../domain/machine-name.js';
import type { RegistrationSpec, ProcessRef } from './registry/machine.js';
import { isAbsolutePath, isNormalizedPath, isRegularVSockCid, isSafeString, isValidIfIndex, isValidPath, verifyProcessRef } from './registry/field-rules.js';
import { liveProcessProbe } from './registry/registry.js';
import { invalidArgs } from './machine-dbus-errors.js';

/** The common fields of every registration, before the registry sees them. */
export interface DBusRegistration {
  name: string;
  id?: Buffer;
  service?: string;
  class?: string;
  /** 0: the caller. */
  leader?: number;
  /** A pidfd the call carried for the leader. */
  leaderPidfd?: number;
  leaderPidfdId?: bigint;
  rootDirectory?: string;
  ifIndices?: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  /** Create*: the unit properties the caller wants on its scope (libvirt: After=, Before=, ...). */
  scopeProperties?: [string, Variant][];
}

/** The pid a pidfd refers to (from its fdinfo), or undefined when it is none or its process is gone. */
function pidOfPidfd(fd: number): number | undefined {
  try {
    const m = /^Pid:\s*(-?\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    const pid = m ? Number(m[1]) : undefined;
    return pid !== undefined && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The properties of RegisterMachineEx/CreateMachineEx machined reads: their type and the field each fills. */
const PROPERTIES: Record<string, [string, keyof DBusRegistration]> = {
  Id: ['ay', 'id'],
  Service: ['s', 'service'],
  Class: ['s', 'class'],
  LeaderPID: ['u', 'leader'],
  // An `h` arrives as the descriptor itself.
  LeaderPIDFD: ['h', 'leaderPidfd'],
  LeaderPIDFDID: ['t', 'leaderPidfdId'],
  RootDirectory: ['s', 'rootDirectory'],
  NetworkInterfaces: ['ai', 'ifIndices'],
  VSockCID: ['u', 'vSockCid'],
  SSHAddress: ['s', 'sshAddress'],
  SSHPrivateKeyPath: ['s', 'sshPrivateKeyPath'],
};

/** The properties of RegisterMachineEx/CreateMachineEx as a registration (an unknown one or a wrong type refused). */
export function fromProperties(name: string, props: [string, Variant][]): DBusRegistration {
  const r: Record<string, unknown> = { name };
  for (const [key, v] of props) {
    const known = PROPERTIES[key];
    if (!known) throw invalidArgs(`Unknown property '${key}'`);
    if (v.signature !== known[0]) throw invalidArgs(`Property '${key}' has unexpected type '${v.signature}', expected '${known[0]}'`);
    r[known[1]] = v.value;
  }
  return r as unknown as DBusRegistration;
}

/** The registration as the registry's spec; throws InvalidArgs with machined's wording on a bad field. */
export function toSpec(r: DBusRegistration, allocateUnit: boolean): RegistrationSpec {
  if (!isValidMachineName(r.name)) throw invalidArgs('Invalid machine name');
  const spec: RegistrationSpec = { name: r.name, class: 'container', allocateUnit, allowInteractiveAuthentication: false };
  if (r.id && r.id.length > 0) {
    if (r.id.length !== 16) throw invalidArgs('Invalid machine ID parameter');
    const hex = r.id.toString('hex');
    if (!/^0+$/.test(hex)) spec.id = hex;
  }
  if (r.service) spec.service = r.service;
  if (r.class !== undefined && r.class !== '') {
    if (r.class !== 'container' && r.class !== 'vm') throw invalidArgs('Invalid machine class parameter');
    spec.class = r.class;
  }
  let leader: ProcessRef | undefined;
  if (r.leaderPidfd !== undefined) {
    const pid = pidOfPidfd(r.leaderPidfd);
    if (pid === undefined) throw invalidArgs('Invalid leader PIDFD');
    leader = { pid, pidfdId: fstatSync(r.leaderPidfd).ino };
    if (r.leader !== undefined && r.leader !== 0 && r.leader !== pid) throw invalidArgs('LeaderPID and LeaderPIDFD refer to different processes');
  } else if (r.leader !== undefined && r.leader !== 0) {
    leader = { pid: r.leader, ...(r.leaderPidfdId ? { pidfdId: Number(r.leaderPidfdId) } : {}) };
  }
  if (leader) {
    // A PID naming no process cannot be pinned: machined says so with ESRCH, naming the PID.
    if (leader.pid > 1 && leader.pid <= 0x7fffffff && !liveProcessProbe.exists(leader.pid)) {
      throw errnoError('ESRCH', `Failed to pin process ${leader.pid}: No such process`);
    }
    if (leader.pid === 1 || !verifyProcessRef(leader, liveProcessProbe)) throw invalidArgs('Invalid leader PID');
    spec.leader = leader;
  }
  if (r.rootDirectory) {
    if (!isAbsolutePath(r.rootDirectory) || !isNormalizedPath(r.rootDirectory)) throw invalidArgs('Root directory must be empty or an absolute path');
    spec.rootDirectory = r.rootDirectory;
  }
  if (r.ifIndices?.length) {
    for (const i of r.ifIndices) if (!isValidIfIndex(i)) throw invalidArgs(`Invalid network interface index ${i}`);
    spec.ifIndices = r.ifIndices.slice();
  }
  if (r.vSockCid !== undefined && r.vSockCid !== 0xffffffff) {
    if (!isRegularVSockCid(r.vSockCid)) throw invalidArgs(`Invalid VSOCK CID ${r.vSockCid}`);
    spec.vSockCid = r.vSockCid;
  }
  if (r.sshAddress) {
    if (!isSafeString(r.sshAddress)) throw invalidArgs('Invalid SSH address');
    spec.sshAddress = r.sshAddress;
  }
  if (r.sshPrivateKeyPath) {
    if (!isAbsolutePath(r.sshPrivateKeyPath) || !isValidPath(r.sshPrivateKeyPath)) throw invalidArgs('SSH private key path must be an absolute path');
    spec.sshPrivateKeyPath = r.sshPrivateKeyPath;
  }
  if (allocateUnit && r.scopeProperties?.length) spec.scopeProperties = r.scopeProperties;
  return spec;
}
