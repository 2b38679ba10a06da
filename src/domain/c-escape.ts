// C-style string escapes as systemd writes and reads them: cescape for state files (SCOPE=, SERVICE=, ROOT=),
// cunescape for reading those back (relaxed) and for --set-credential values (strict, as nspawn and vmspawn
// take them).

/** Why a strictly unescaped string was refused. */
export class CEscapeError extends Error {
  override name = 'CEscapeError';
}

const TO_NAMED: Record<number, string> = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r', 0x22: '"', 0x27: "'", 0x5c: '\\' };
const FROM_NAMED: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 0x22, "'": 0x27, '\\': 0x5c, s: 0x20 };

/** Escape as machined does: named escapes, other control and non-ASCII bytes as three octal digits. */
export function cescape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const n = TO_NAMED[b];
    if (n !== undefined) out += '\\' + n;
    else if (b < 0x20 || b >= 0x7f) out += '\\' + b.toString(8).padStart(3, '0');
    else out += String.fromCharCode(b);
  }
  return out;
}

export interface UnescapeOptions {
  /**
   * Relaxed: a trailing backslash and an escape that means nothing are kept as written (backslash included),
   * as systemd's UNESCAPE_RELAX does. Strict (default): both are errors.
   */
  relax?: boolean;
}

/**
 * One escape at `src[i]` (the byte after the backslash): the bytes it stands for and how many input bytes it
 * used, or undefined when it is no escape.
 */
function decodeOne(src: Buffer, i: number): { bytes: number[]; used: number } | undefined {
  const c = String.fromCharCode(src[i]!);
  const ahead = (n: number) => src.subarray(i, i + n).toString('latin1');
  const named = FROM_NAMED[c];
  if (named !== undefined) return { bytes: [named], used: 1 };
  const oct = /^[0-3][0-7]{2}$/.exec(ahead(3));
  if (oct) return { bytes: [parseInt(oct[0], 8)], used: 3 };
  // A lone \0 (not the start of three octal digits) is NUL, as berth has always read it.
  if (c === '0') return { bytes: [0], used: 1 };
  const hex = /^x([0-9a-fA-F]{2})$/.exec(ahead(3));
  if (hex) return { bytes: [parseInt(hex[1]!, 16)], used: 3 };
  const uni = /^(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))/.exec(ahead(9));
  if (uni) {
    const cp = parseInt(uni[1] ?? uni[2]!, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
    return { bytes: [...Buffer.from(String.fromCodePoint(cp), 'utf8')], used: uni[0].length };
  }
  return undefined;
}

/** Undo C escapes (named, \NNN octal, \xNN, \uNNNN, \UNNNNNNNN, \s for a space) into bytes. */
export function cunescapeBytes(s: string, options: UnescapeOptions = {}): Buffer {
  const src = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b !== 0x5c) {
      out.push(b);
      continue;
    }
    if (i + 1 >= src.length) {
      if (!options.relax) throw new CEscapeError(`trailing backslash in "${s}"`);
      out.push(b);
      continue;
    }
    const one = decodeOne(src, i + 1);
    if (!one) {
      if (!options.relax) throw new CEscapeError(`unknown escape \\${String.fromCharCode(src[i + 1]!)} in "${s}"`);
      out.push(b); // the backslash stays; what follows is read as ordinary text
      continue;
    }
    out.push(...one.bytes);
    i += one.used;
  }
  return Buffer.from(out);
}

/** cunescapeBytes as a UTF-8 string. */
export const cunescape = (s: string, options: UnescapeOptions = {}): string => cunescapeBytes(s, options).toString('utf8');
