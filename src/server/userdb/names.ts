/**
 * User/group name and UID rules, as systemd-machined 257 applies them to io.systemd.UserDatabase
 * calls. Every rule here was checked against the real 257 daemon (see test/unit/userdb/).
 */

/** (uid_t)-1 and (uint16_t)-1: never valid IDs. */
export const UID_INVALID = 0xffffffff;
export const UID_INVALID16 = 0xffff;
/** Host IDs below this belong to the host; machined synthesizes no records for them. */
export const CONTAINER_ID_MIN = 0x10000;
/** A strict user/group name is at most this long (utmp's name field minus its NUL). */
export const USER_NAME_MAX_STRICT = 31;

/** A valid UID/GID: a 32-bit unsigned integer other than 65535 and 4294967295. */
export function isValidUid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < UID_INVALID && n !== UID_INVALID16;
}

/**
 * The ID grammar used inside `vu-MACHINE-ID` names: decimal digits only, no sign, no whitespace, no
 * leading zero (except "0" itself), and a valid UID. Returns undefined when `s` is not one.
 */
export function parseUid(s: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(s)) return undefined;
  const n = Number(s);
  return isValidUid(n) ? n : undefined;
}

const STRICT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Strict user/group name: starts with a letter or `_`, continues with letters, digits, `_` or `-`,
 * and is at most 31 characters. Synthesized names must pass this, so a machine whose name contains
 * a dot, or whose `vu-NAME-ID` would be longer than 31 characters, gets no records.
 */
export function isValidUserGroupNameStrict(s: string): boolean {
  return s.length > 0 && s.length <= USER_NAME_MAX_STRICT && STRICT_NAME.test(s);
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return true;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

const ASCII_WS = ' \t\n\r';

/**
 * The relaxed rule machined applies to `userName`/`groupName` parameters before any lookup; a name
 * failing it is answered `InvalidParameter`, one passing it but not strict is simply not found.
 * Refused: the empty string, `-`, anything that is only digits with an optional leading `-`,
 * leading or trailing ASCII whitespace, `.` and `..`, ASCII control characters (including DEL),
 * `:` and `/`, and (here) text that is not valid Unicode. Accepted, for example: `-vu`, `+1`, `0x10`,
 * `a b`, `.a`, `~`, non-ASCII letters, and names of any length.
 */
export function isValidUserGroupNameRelaxed(s: string): boolean {
  if (s.length === 0) return false;
  if (/^-?[0-9]*$/.test(s)) return false;
  if (ASCII_WS.includes(s[0]!) || ASCII_WS.includes(s[s.length - 1]!)) return false;
  if (s === '.' || s === '..') return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x3a /* : */ || c === 0x2f /* / */) return false;
  }
  return !hasLoneSurrogate(s);
}
