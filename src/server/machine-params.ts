// io.systemd.Machine's parameters read the way systemd-machined 262 reads them (257's rules where 262 kept them), into the registry's typed
// requests: one key at a time in the order the caller sent them, the first bad one reported as
// InvalidParameter (test/unit/registry/validate.test.ts holds the observed vectors). Integers may come in
// C notation (c-integers.ts); a name that is no machine name is reported after every other field of a
// lookup, as machined only checks it when it looks the machine up. The field rules themselves are shared
// with the D-Bus binding (registry/field-rules.ts, src/domain/machine-name.ts).

import { jsonInteger } from './c-integers.js';
import { parseId128 } from '../domain/id128.js';
import { isValidLookupName, isValidMachineName } from '../domain/machine-name.js';
import { SIGNAL_MAX } from '../domain/signals.js';
import {
  fail,
  ok,
  type KillWhom,
  type LookupSpec,
  type ProcessProbe,
  type ProcessRef,
  type RegistrationSpec,
  type Result,
} from './registry/machine.js';
import {
  INT32_MAX,
  isAbsolutePath,
  isNormalizedPath,
  isRegistrablePid,
  isRegularVSockCid,
  isSafeString,
  isValidIfIndex,
  isValidPath,
  verifyProcessRef,
} from './registry/field-rules.js';

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

/** An integer as a JSON number can carry one: from -2^63 up to below 2^64, integral (9.0 and 1e1 too). */
const isWideInteger = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 64;

/**
 * 262 reads Register's deprecated `supervisor` and drops it: null, any string and any integer pass, other
 * types (and fractions) are invalid.
 */
const isIgnoredSupervisor = (v: unknown): boolean => v === null || typeof v === 'string' || isWideInteger(v);

/**
 * The deprecated `supervisorProcessId` as 262 reads it before dropping it: an object of ProcessId keys only,
 * with a `pid` that is a string or an integer, or null; `pidfdId` and `bootId` are not looked at.
 */
function isIgnoredSupervisorProcessId(v: unknown): boolean {
  if (v === null) return true;
  if (typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (Object.keys(o).some((k) => k !== 'pid' && k !== 'pidfdId' && k !== 'bootId')) return false;
  return typeof o.pid === 'string' || isWideInteger(o.pid);
}

/** Returns the ProcessRef when `v` is a well-formed ProcessId object naming a registrable, existing process. */
function checkProcessId(v: unknown, probe: ProcessProbe): ProcessRef | undefined {
  const ref = readProcessId(v);
  return ref && verifyProcessRef(ref, probe) ? ref : undefined;
}

/**
 * Check the parameters of a Register call the way machined 262 does, in the order of the caller's keys.
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
        for (const i of v) if (!isValidIfIndex(i)) return bad(key);
        spec.ifIndices = v.slice() as number[];
        break;
      }
      case 'vSockCid': {
        const cid = jsonInteger(v, { unsigned: true });
        if (cid === undefined || !isRegularVSockCid(cid)) return bad(key);
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
      case 'controlAddress':
        // A socket path, not an address URI: 262 refuses `unix:/…`, relative and unnormalized paths.
        if (typeof v !== 'string' || !isAbsolutePath(v) || !isNormalizedPath(v)) return bad(key);
        spec.controlAddress = v;
        break;
      case 'supervisor':
        // The supervisor is the caller (see Registry.registerSpec); the value sent is only checked.
        if (!isIgnoredSupervisor(v)) return bad(key);
        break;
      case 'supervisorProcessId':
        if (!isIgnoredSupervisorProcessId(v)) return bad(key);
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

export interface KillSpec extends LookupSpec {
  signal: number;
  /** Already checked by validateKill; parseKillWhom turns absent into `all`. */
  whom?: unknown;
}

/**
 * Check a Kill call: `whom` first, wherever it stands (262 refuses a bad one before anything else, and null
 * or "" too, which 257 took for `all`), then the lookup fields and `signal` in key order (a bad `name` after a
 * missing signal, as in 257).
 */
export function validateKill(input: Record<string, unknown>): Result<KillSpec> {
  const spec: KillSpec = { signal: 0 };
  if ('whom' in input && !KILL_WHOM.includes(input.whom as KillWhom)) return fail({ invalidParameter: 'whom' });
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

const KILL_WHOM: readonly KillWhom[] = ['leader', 'supervisor', 'all'];

/** 262: `whom` is `leader`, `supervisor` or `all`, spelled exactly; absent means `all`. */
export function parseKillWhom(v: unknown): Result<KillWhom> {
  if (v === undefined) return ok('all');
  if (KILL_WHOM.includes(v as KillWhom)) return ok(v as KillWhom);
  return fail({ invalidParameter: 'whom' });
}

