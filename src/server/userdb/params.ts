/**
 * Which parameters each io.systemd.UserDatabase method takes, and the type checks its IDL makes
 * before the handler runs (UserDb repeats them so that its answers are right on its own).
 */
import type { FilterKeys } from './filters.js';

/** A user or group ID parameter, or none (GetMemberships). */
type IdKind = 'uid' | 'gid';

export interface Spec {
  readonly id?: IdKind;
  readonly names: readonly string[];
  /** The filter fields the method takes (262's GetUserRecord/GetGroupRecord). */
  readonly filter?: FilterKeys;
}
export const USER_SPEC: Spec = { id: 'uid', names: ['userName'], filter: { min: 'uidMin', max: 'uidMax' } };
export const GROUP_SPEC: Spec = { id: 'gid', names: ['groupName'], filter: { min: 'gidMin', max: 'gidMax' } };
export const MEMBERSHIP_SPEC: Spec = { names: ['userName', 'groupName'] };

const idlInt = (v: unknown) => v == null || typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 64);
const idlStrings = (v: unknown) => v == null || (Array.isArray(v) && v.every((x) => typeof x === 'string'));

/**
 * What the IDL validator rejects before the handler runs, in its order: the declared fields in
 * declaration order (an int field takes any integral number within 64 bits, or any string; a string
 * field takes a string; nullable fields take null), then the first undeclared key. The order is
 * 262's: id, name, fuzzyNames, dispositionMask, min, max, uuid, service. berth's Varlink layer does
 * the same before UserDb is called; repeating it keeps UserDb's answers right on its own.
 */
export function idlCheck(p: Record<string, unknown>, keys: string[], spec: Spec): string | undefined {
  if (spec.id !== undefined && !idlInt(p[spec.id])) return spec.id;
  for (const k of spec.names) {
    const v = p[k];
    if (v != null && typeof v !== 'string') return k;
  }
  const f = spec.filter;
  // Only calls that carry a filter key pay for the filter checks (the NSS lookups never do).
  if (f && hasFilterKey(spec, keys)) {
    if (!idlStrings(p.fuzzyNames)) return 'fuzzyNames';
    if (!idlStrings(p.dispositionMask)) return 'dispositionMask';
    if (!idlInt(p[f.min])) return f.min;
    if (!idlInt(p[f.max])) return f.max;
    if (p.uuid != null && typeof p.uuid !== 'string') return 'uuid';
  }
  if (typeof p.service !== 'string') return 'service';
  for (const k of keys) if (k !== 'service' && k !== spec.id && !spec.names.includes(k) && !isFilterKey(spec, k) && p[k] !== undefined) return k;
  return undefined;
}

function hasFilterKey(spec: Spec, keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i++) if (isFilterKey(spec, keys[i]!)) return true;
  return false;
}

export function isFilterKey(spec: Spec, k: string): boolean {
  const f = spec.filter;
  return f !== undefined && (k === 'fuzzyNames' || k === 'dispositionMask' || k === 'uuid' || k === f.min || k === f.max);
}

