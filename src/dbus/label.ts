/**
 * Object path labels as sd-bus escapes them, so that any string (a machine name, an image name)
 * can be one element of an object path: ASCII letters are kept, and digits too except in the first
 * position; every other byte of the UTF-8 text becomes `_` and two lowercase hex digits. The empty
 * string is written as a single `_`. Unescaping turns each `_xx` with two hex digits back into its
 * byte and keeps any other `_` as it is; a lone `_` is the empty string.
 */

export function escapeLabel(s: string): string {
  if (s === '') return '_';
  const bytes = Buffer.from(s, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    const letter = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    const digit = b >= 0x30 && b <= 0x39;
    if (letter || (digit && i > 0)) out += String.fromCharCode(b);
    else out += '_' + b.toString(16).padStart(2, '0');
  }
  return out;
}

const hex = /^[0-9a-fA-F]{2}$/;

export function unescapeLabel(label: string): string {
  if (label === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const pair = label.slice(i + 1, i + 3);
    if (label[i] === '_' && hex.test(pair)) {
      bytes.push(parseInt(pair, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(label[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `prefix/escaped(name)`, e.g. ('/org/freedesktop/machine1/machine', 'foo-1') → '…/machine/foo_2d1'. */
export function pathForLabel(prefix: string, name: string): string {
  return `${prefix === '/' ? '' : prefix}/${escapeLabel(name)}`;
}

/** The unescaped last element of `path` when it lies directly under `prefix`, else undefined. */
export function labelFromPath(prefix: string, path: string): string | undefined {
  const base = prefix === '/' ? '/' : prefix + '/';
  if (!path.startsWith(base)) return undefined;
  const rest = path.slice(base.length);
  if (rest === '' || rest.includes('/')) return undefined;
  return unescapeLabel(rest);
}
