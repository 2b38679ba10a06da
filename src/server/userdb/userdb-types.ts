/**
 * The shapes UserDb speaks in: its error names, what a lookup answers, a machine as UserDb sees it, and
 * the ranges and owners of host IDs it reports. Kept apart from the lookups themselves (userdb.ts).
 */
import type { IdMapSource } from './idmap.js';
import type { RecordFilter } from './filters.js';

export const UserDbErrors = {
  NoRecordFound: 'io.systemd.UserDatabase.NoRecordFound',
  BadService: 'io.systemd.UserDatabase.BadService',
  ConflictingRecordFound: 'io.systemd.UserDatabase.ConflictingRecordFound',
  EnumerationNotSupported: 'io.systemd.UserDatabase.EnumerationNotSupported',
  NonMatchingRecordFound: 'io.systemd.UserDatabase.NonMatchingRecordFound',
} as const;
export type UserDbErrorName = (typeof UserDbErrors)[keyof typeof UserDbErrors];

/**
 * What a lookup answers. `records` holds exactly one record (machined never streams several);
 * `invalidParameter` names the offending key (→ org.varlink.service.InvalidParameter);
 * `errno` comes with `io.systemd.System`.
 */
export type UserDbResult<R> =
  | { records: R[] }
  | { error: UserDbErrorName }
  | { error: 'io.systemd.System'; errno: number }
  | { invalidParameter: string }
  /** A valid filtered enumeration: the caller lists `enumerateUsers`/`enumerateGroups` of it. */
  | { enumerate: RecordFilter };

export type IdKind = 'uid' | 'gid';

export interface UserDbMachine {
  readonly name: string;
  /** `container` machines get records; other classes (`vm`) only show up in ranges and owners. */
  readonly class: string;
  /** The leader's PID, kept so that a caller can re-read maps that were still empty at registration. */
  readonly leader?: number;
  readonly uidMap: IdMapSource;
  readonly gidMap: IdMapSource;
  /** UID of the peer that registered the machine. */
  readonly registeredBy: number;
}

/** One line of a machine's uid or gid map, as berth reports it. */
export interface IdRange {
  readonly machine: string;
  readonly class: string;
  readonly kind: IdKind;
  /** First host ID. */
  readonly base: number;
  readonly size: number;
  /** First ID inside the machine. */
  readonly inside: number;
  readonly registeredBy: number;
}

export interface IdOwner {
  readonly machine: string;
  readonly class: string;
  /** The ID as the machine sees it. */
  readonly inside: number;
  readonly range: IdRange;
}

export interface RangeOverlap {
  readonly kind: IdKind;
  /** The new machine's range. */
  readonly range: IdRange;
  /** The existing range it overlaps. */
  readonly other: IdRange;
}
