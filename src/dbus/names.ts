/**
 * Validation of the names D-Bus carries, by the rules of the specification: object paths, bus
 * names (unique and well-known), interface names, member names and error names.
 */

const element = /^[A-Za-z_][A-Za-z0-9_]*$/;
const busElement = /^[A-Za-z_-][A-Za-z0-9_-]*$/;
const uniqueElement = /^[A-Za-z0-9_-]+$/;

/** `/` or `/a/b_c/D1`: elements of [A-Za-z0-9_], none empty, no trailing slash. */
export function isObjectPath(s: string): boolean {
  if (s === '/') return true;
  if (s.length === 0 || s[0] !== '/' || s.endsWith('/')) return false;
  return /^(\/[A-Za-z0-9_]+)+$/.test(s);
}

/** Dotted name of two or more elements, each not starting with a digit; at most 255 bytes. */
export function isInterfaceName(s: string): boolean {
  if (s.length === 0 || s.length > 255) return false;
  const parts = s.split('.');
  return parts.length >= 2 && parts.every((p) => element.test(p));
}

/** Error names follow the interface name rules. */
export const isErrorName = isInterfaceName;

/** One element of [A-Za-z0-9_], not starting with a digit; at most 255 bytes. */
export function isMemberName(s: string): boolean {
  return s.length > 0 && s.length <= 255 && element.test(s);
}

/** A unique name (`:1.42`) or a well-known name (`org.freedesktop.machine1`). */
export function isBusName(s: string): boolean {
  if (s.length === 0 || s.length > 255) return false;
  if (s[0] === ':') {
    const parts = s.slice(1).split('.');
    return parts.length >= 2 && parts.every((p) => uniqueElement.test(p));
  }
  const parts = s.split('.');
  return parts.length >= 2 && parts.every((p) => busElement.test(p));
}
