// systemd unit names as berth needs them: escaping a string into a unit name, the scope unit and slice of a
// machine, and telling which names are units that can hold processes.

const UNIT_NAME_MAX = 255;
const UNIT_VALID_CHARS = /^[A-Za-z0-9:_.\\@-]+$/;

/**
 * Escape a string for use in a unit name the way systemd does: `/` becomes `-`; letters, digits, `:`, `_`
 * and `.` stay, except a leading `.`; everything else (including `-` and `\`) becomes `\xNN` per byte.
 */
export function unitNameEscape(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (i === 0 && c === '.') out += '\\x2e';
    else if (/[A-Za-z0-9:_.]/.test(c)) out += c;
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/** The slice machine scopes go in. */
export const MACHINE_SLICE = 'machine.slice';

/** The scope unit berth (and machined) allocates for a machine: `machine-<escaped name>.scope`. */
export function machineScopeUnit(name: string): string {
  return `machine-${unitNameEscape(name)}.scope`;
}

/** A unit name of a type that can hold processes: `prefix[@instance].scope|.service`. */
export function isProcessUnitName(s: string): boolean {
  if (s.length === 0 || s.length > UNIT_NAME_MAX || !UNIT_VALID_CHARS.test(s)) return false;
  const m = /^(.+)\.(scope|service)$/.exec(s);
  if (!m) return false;
  const stem = m[1]!;
  const at = stem.indexOf('@');
  if (at === 0) return false;
  if (at > 0 && stem.indexOf('@', at + 1) >= 0) return false;
  return true;
}

/** A slice name, `a.slice`, `a-b.slice`, `-.slice`. */
export function isSliceName(s: string): boolean {
  return s.endsWith('.slice') && s.length > '.slice'.length && UNIT_VALID_CHARS.test(s);
}
