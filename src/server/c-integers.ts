// How machined's parameter parsing reads integers and ProcessId objects, as observed on the real 257.
//
// The IDL check lets any string through where the IDL says `int` and leaves the decision to the method:
// machined reads most integer fields (Kill's `signal`, Register's `leader` and `vSockCid`, a ProcessId's
// `pid` and `pidfdId`) from a string too, in C notation: leading white space, an optional sign, then
// decimal, `0x` hex, `0o` or leading-`0` octal, or `0b` binary, with nothing after the digits. Elements of
// `ifIndices` are the exception: they must be JSON numbers. test/unit/registry/c-integers.test.ts holds
// the observed vectors; test/interop/differential/ compares them with a running 257.

/** White space as C's isspace() knows it. */
const C_SPACE = /^[ \t\n\v\f\r]*/;

const DIGITS: Record<number, RegExp> = {
  2: /^[01]+$/,
  8: /^[0-7]+$/,
  10: /^[0-9]+$/,
  16: /^[0-9a-fA-F]+$/,
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function parseCInteger(text: string, unsigned: boolean): bigint | undefined {
  let s = text.replace(C_SPACE, '');
  let negative = false;
  if (s.startsWith('+') || s.startsWith('-')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  let base = 10;
  if (/^0[xX]/.test(s)) [base, s] = [16, s.slice(2)];
  else if (/^0[bB]/.test(s)) [base, s] = [2, s.slice(2)];
  else if (/^0[oO]/.test(s)) [base, s] = [8, s.slice(2)];
  else if (s.length > 1 && s.startsWith('0')) base = 8;
  if (!DIGITS[base]!.test(s)) return undefined;
  const prefix = base === 16 ? '0x' : base === 8 ? '0o' : base === 2 ? '0b' : '';
  const magnitude = BigInt(prefix + s);
  if (unsigned) {
    // A minus sign is only tolerated on zero.
    if (negative && magnitude !== 0n) return undefined;
    return magnitude <= UINT64_MAX ? magnitude : undefined;
  }
  const value = negative ? -magnitude : magnitude;
  return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
}

/**
 * An integer field as machined reads it: a JSON integer, or a string in C notation. `unsigned` refuses
 * negative values. Returns undefined for anything else (fractions, booleans, null, bad strings). Values
 * beyond 2^53 come back rounded; callers range-check far below that.
 */
export function jsonInteger(v: unknown, { unsigned = false }: { unsigned?: boolean } = {}): number | undefined {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return undefined;
    if (unsigned && v < 0) return undefined;
    return v;
  }
  if (typeof v !== 'string') return undefined;
  const n = parseCInteger(v, unsigned);
  return n === undefined ? undefined : Number(n);
}
