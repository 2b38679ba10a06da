// The Machine object model and the pure checks a registration goes through.
//
// Nothing here knows about Varlink: failures are described by `RegistryError` values which the API layer
// turns into wire errors. The checks follow what systemd-machined 257 was observed to answer (see
// test/unit/registry/validate.test.ts for the vectors): parameters are checked one by one in the order the
// caller sent their keys, and the first bad one is reported.

import { jsonInteger } from './c-integers.js';
import { parseId128 } from '../../domain/id128.js';
import { isValidLookupName, isValidMachineName } from '../../domain/machine-name.js';
import { SIGNAL_MAX } from '../../domain/signals.js';

/** Classes a client may register. `host` only exists for the synthetic `.host` entry. */
export type MachineClass = 'container' | 'vm';

/** Why an operation of the registry failed, in a form the API layer maps onto Varlink errors. */
export type MachineErrorName =
  | 'io.systemd.Machine.MachineExists'
  | 'io.systemd.Machine.NoSuchMachine'
  | 'io.systemd.Machine.NotSupported'
  | 'io.systemd.Machine.NotAvailable'
  | 'io.systemd.Machine.NoPrivateNetworking'
  | 'io.systemd.Machine.NoUIDShift';

export type RegistryError =
  | { error: MachineErrorName }
  | { invalidParameter: string }
  | { errno: number }
  | { permissionDenied: true };

export type Result<T> = { ok: true; value: T } | { ok: false; error: RegistryError };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(error: RegistryError): Result<T> => ({ ok: false, error });

/** Linux errno values the registry reports. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  EOPNOTSUPP: 95,
} as const;

/** A reference to a process as clients send it (`ProcessId` in the IDL). */
export interface ProcessRef {
  pid: number;
  pidfdId?: number;
  bootId?: string;
}

/** The leader as the registry tracks it. `starttime` is field 22 of /proc/PID/stat (clock ticks since boot). */
export interface LeaderInfo {
  pid: number;
  pidfdId?: number;
  starttime?: number;
}

export interface Timestamp {
  /** µs, CLOCK_REALTIME */
  realtime: number;
  /** µs, CLOCK_MONOTONIC */
  monotonic: number;
}

export interface Machine {
  name: string;
  /** 32 lowercase hex digits, absent when the client sent none (or all zeros). */
  id?: string;
  service?: string;
  class: MachineClass | 'host';
  leader: LeaderInfo;
  rootDirectory?: string;
  ifIndices: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  /** The unit the machine lives in, e.g. `machine-foo.scope` or `systemd-nspawn@foo.service`. */
  unit?: string;
  /** The cgroup path of that unit, relative to the hierarchy root (`/machine.slice/machine-foo.scope`). */
  unitCgroup?: string;
  /** True when berth created the scope cgroup itself and should remove it on teardown. */
  ownsScope: boolean;
  timestamp: Timestamp;
  /** UID of the peer that registered the machine (0 for root). */
  registeredBy: number;
  allocateUnit: boolean;
}

/** A validated Register call, before the registry has looked at its own state. */
export interface RegistrationSpec {
  name: string;
  id?: string;
  service?: string;
  class: MachineClass | 'host';
  leader?: ProcessRef;
  rootDirectory?: string;
  ifIndices?: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  allocateUnit: boolean;
  allowInteractiveAuthentication: boolean;
}

/** What the checks need to know about processes; injectable so the checks stay testable. */
export interface ProcessProbe {
  /** Does a process with this PID exist (zombies included)? */
  exists(pid: number): boolean;
  /** The inode number of a pidfd for this PID, if pidfd inode numbers identify processes on this kernel. */
  pidfdId?(pid: number): number | undefined;
  /** The boot ID of this system, 32 lowercase hex digits. */
  bootId?(): string | undefined;
}

const PATH_MAX = 4096;
const NAME_MAX = 255;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;

/** A path the kernel could accept: non-empty, no NUL, below PATH_MAX, no component longer than NAME_MAX. */
export function isValidPath(p: string): boolean {
  if (p.length === 0 || p.includes('\0')) return false;
  if (Buffer.byteLength(p) >= PATH_MAX) return false;
  return p.split('/').every((c) => Buffer.byteLength(c) <= NAME_MAX);
}

/** No `.` or `..` components and no doubled slashes (a single trailing slash is fine). */
export function isNormalizedPath(p: string): boolean {
  if (!isValidPath(p)) return false;
  if (p.includes('//')) return false;
  return p.split('/').every((c) => c !== '.' && c !== '..');
}

export const isAbsolutePath = (p: string): boolean => p.startsWith('/');

/** No control characters, quotes or backslashes. */
export function isSafeString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x22 || c === 0x27 || c === 0x5c) return false;
  }
  return true;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A PID a client may name as leader: a positive pid_t, not PID 1. */
function isRegistrablePid(v: unknown): v is number {
  return isInt(v) && v > 1 && v <= INT32_MAX;
}

/**
 * The fields of a ProcessId object as machined reads them: only `pid`, `pidfdId` and `bootId`; `pid` and
 * `pidfdId` integers (strings in C notation included, see c-integers.ts), `bootId` a 128-bit ID; null is
 * refused for each of them. A `pidfdId` of 0 and the all-zero `bootId` mean "not given".
 */
function readProcessId(v: unknown): ProcessRef | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'pid' && k !== 'pidfdId' && k !== 'bootId') return undefined;
  const pid = jsonInteger(o.pid, { unsigned: true });
  if (pid === undefined || pid > INT32_MAX) return undefined;
  const ref: ProcessRef = { pid };
  if ('pidfdId' in o) {
    const id = jsonInteger(o.pidfdId, { unsigned: true });
    if (id === undefined) return undefined;
    if (id !== 0) ref.pidfdId = id;
  }
  if ('bootId' in o) {
    const b = parseId128(o.bootId);
    if (b === undefined) return undefined;
    if (b !== '') ref.bootId = b;
  }
  return ref;
}

/** Returns the ProcessRef when `v` is a well-formed ProcessId object naming a registrable, existing process. */
function checkProcessId(v: unknown, probe: ProcessProbe): ProcessRef | undefined {
  const ref = readProcessId(v);
  if (!ref || !isRegistrablePid(ref.pid) || !probe.exists(ref.pid)) return undefined;
  if (ref.pidfdId !== undefined) {
    const actual = probe.pidfdId?.(ref.pid);
    if (actual !== undefined && actual !== ref.pidfdId) return undefined;
  }
  if (ref.bootId !== undefined) {
    const local = probe.bootId?.();
    if (local !== undefined && ref.bootId !== local) return undefined;
  }
  return ref;
}

/**
 * Check the parameters of a Register call the way machined 257 does, in the order of the caller's keys.
 * The input is assumed to have passed IDL validation already, but is checked defensively anyway.
 * Returns the spec, or the first error. Conflicts with registered machines are the registry's business.
 */
export function validateRegistration(input: Record<string, unknown>, probe: ProcessProbe): Result<RegistrationSpec> {
  const spec: Partial<RegistrationSpec> & { allocateUnit: boolean; allowInteractiveAuthentication: boolean } = {
    allocateUnit: false,
    allowInteractiveAuthentication: false,
  };
  const bad = (parameter: string) => fail<RegistrationSpec>({ invalidParameter: parameter });
  for (const [key, v] of Object.entries(input)) {
    switch (key) {
      case 'name':
        if (typeof v !== 'string' || !isValidMachineName(v)) return bad(key);
        spec.name = v;
        break;
      case 'id': {
        const id = parseId128(v);
        if (id === undefined) return bad(key);
        if (id === '') delete spec.id;
        else spec.id = id;
        break;
      }
      case 'service':
        if (typeof v !== 'string') return bad(key);
        spec.service = v;
        break;
      case 'class':
        if (v !== 'container' && v !== 'vm' && v !== 'host') return bad(key);
        spec.class = v;
        break;
      case 'leader': {
        if (v === null) break;
        const pid = jsonInteger(v, { unsigned: true });
        if (pid === undefined || !isRegistrablePid(pid) || !probe.exists(pid)) return bad(key);
        if (spec.leader && spec.leader.pid !== pid) return bad(key);
        spec.leader = spec.leader ?? { pid };
        break;
      }
      case 'leaderProcessId': {
        const ref = checkProcessId(v, probe);
        if (!ref) return bad(key);
        if (spec.leader && spec.leader.pid !== ref.pid) return bad(key);
        spec.leader = ref;
        break;
      }
      case 'rootDirectory':
        if (typeof v !== 'string' || !isAbsolutePath(v) || !isNormalizedPath(v)) return bad(key);
        spec.rootDirectory = v;
        break;
      case 'ifIndices': {
        if (!Array.isArray(v)) return bad(key);
        for (const i of v) if (!isInt(i) || i < 1 || i > INT32_MAX) return bad(key);
        spec.ifIndices = v.slice() as number[];
        break;
      }
      case 'vSockCid': {
        // Regular CIDs only: not ANY (-1U), HYPERVISOR (0), LOCAL (1) or HOST (2).
        const cid = jsonInteger(v, { unsigned: true });
        if (cid === undefined || cid < 3 || cid >= UINT32_MAX) return bad(key);
        spec.vSockCid = cid;
        break;
      }
      case 'sshAddress':
        if (typeof v !== 'string' || !isSafeString(v)) return bad(key);
        spec.sshAddress = v;
        break;
      case 'sshPrivateKeyPath':
        if (typeof v !== 'string' || !isAbsolutePath(v) || !isValidPath(v)) return bad(key);
        spec.sshPrivateKeyPath = v;
        break;
      case 'allocateUnit':
      case 'allowInteractiveAuthentication':
        if (typeof v !== 'boolean') return bad(key);
        spec[key] = v;
        break;
      default:
        return bad(key);
    }
  }
  if (spec.name === undefined) return bad('name');
  if (spec.class === undefined) return bad('class');
  // `host` parses, but only the synthetic `.host` entry may have it; checked after all parameters.
  if (spec.class === 'host') return bad('class');
  return ok(spec as RegistrationSpec);
}

/** Lookup parameters shared by Unregister, Terminate, Kill, List, Open. */
export interface LookupSpec {
  name?: string;
  pid?: ProcessRef;
}

/**
 * Check one key of a lookup; returns false when the value is bad, undefined when the key is not a lookup key,
 * and 'bad-name' for a string that is no machine name: machined reads `name` as a plain string and checks it
 * only when it looks the machine up, so every other parameter's error comes first.
 */
function dispatchLookupKey(spec: LookupSpec, key: string, v: unknown): boolean | 'bad-name' | undefined {
  if (key === 'name') {
    if (typeof v !== 'string') return false;
    if (!isValidLookupName(v)) return 'bad-name';
    spec.name = v;
    return true;
  }
  if (key === 'pid') {
    if (v === null || v === undefined) return true;
    // Lookups are lenient about identity: a pidfdId or bootId that does not match is ignored, as in 257.
    const ref = readProcessId(v);
    if (!ref) return false;
    spec.pid = ref;
    return true;
  }
  if (key === 'allowInteractiveAuthentication') return typeof v === 'boolean';
  return undefined;
}

/**
 * Check `name` and `pid` of a lookup (`.host` allowed; `pid` must be a ProcessId object, `{pid:0}` meaning the
 * caller), in key order, a bad `name` last (see dispatchLookupKey). A null `pid` counts as absent; a null `name`
 * is invalid, as in machined. Keys in `extra` are passed to `checkExtra` (when given) in key order; any other
 * key is an invalid parameter.
 */
export function validateLookup(
  input: Record<string, unknown>,
  extra: readonly string[] = [],
  checkExtra?: (key: string, v: unknown) => boolean,
): Result<LookupSpec> {
  const spec: LookupSpec = {};
  let badName = false;
  for (const [key, v] of Object.entries(input)) {
    const r = dispatchLookupKey(spec, key, v);
    if (r === 'bad-name') badName = true;
    else if (r === undefined && extra.includes(key)) {
      if (checkExtra && !checkExtra(key, v)) return fail({ invalidParameter: key });
    } else if (r !== true) return fail({ invalidParameter: key });
  }
  if (badName) return fail({ invalidParameter: 'name' });
  return ok(spec);
}

export type KillWhom = 'leader' | 'all';

export interface KillSpec extends LookupSpec {
  signal: number;
  /** As sent; checked with parseKillWhom only after the machine was found, as machined does. */
  whom?: unknown;
}

/**
 * Check a Kill call's lookup fields and `signal` in key order (`whom` is checked later, by parseKillWhom; a bad
 * `name` after a missing signal, as in 257).
 */
export function validateKill(input: Record<string, unknown>): Result<KillSpec> {
  const spec: KillSpec = { signal: 0 };
  let haveSignal = false;
  let badName = false;
  for (const [key, v] of Object.entries(input)) {
    if (key === 'signal') {
      const signal = jsonInteger(v);
      if (signal === undefined || signal < 1 || signal > SIGNAL_MAX) return fail({ invalidParameter: 'signal' });
      spec.signal = signal;
      haveSignal = true;
    } else if (key === 'whom') {
      spec.whom = v;
    } else {
      const r = dispatchLookupKey(spec, key, v);
      if (r === 'bad-name') badName = true;
      else if (r !== true) return fail({ invalidParameter: key });
    }
  }
  if (!haveSignal) return fail({ invalidParameter: 'signal' });
  if (badName) return fail({ invalidParameter: 'name' });
  return ok(spec);
}

/** 257: `whom` is `leader` or `all`; absent, null or empty means `all`. */
export function parseKillWhom(v: unknown): Result<KillWhom> {
  if (v === undefined || v === null || v === '') return ok('all');
  if (v === 'leader' || v === 'all') return ok(v);
  return fail({ invalidParameter: 'whom' });
}

/** Current time as machined records it: µs on CLOCK_REALTIME and CLOCK_MONOTONIC. */
export function now(): Timestamp {
  const realtime = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const monotonic = Number(process.hrtime.bigint() / 1000n);
  return { realtime, monotonic };
}

/**
 * Where a machine's file system is reachable from the host: the leader's root, as /proc shows it
 * (open files there with openInRoot, never by plain path), or / for the host.
 */
export function machineRoot(m: Pick<Machine, 'class' | 'leader'>): string {
  return m.class === 'host' ? '/' : `/proc/${m.leader.pid}/root`;
}
