/**
 * SipHash-2-4 (Aumasson & Bernstein), 64-bit output, 128-bit key.
 *
 * systemd derives several stable values from it (UID-range candidates, veth MAC addresses,
 * shortened interface names), each with its own fixed key; berth reproduces those values.
 */

const MASK = (1n << 64n) - 1n;

function rotl(x: bigint, b: bigint): bigint {
  return ((x << b) | (x >> (64n - b))) & MASK;
}

function readLe64(buf: Uint8Array, off: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(buf[off + i]!);
  return v;
}

/** Hash `data` with a 16-byte `key`; returns the 64-bit result as an unsigned BigInt. */
export function siphash24(data: Uint8Array, key: Uint8Array): bigint {
  if (key.length !== 16) throw new RangeError('siphash24 needs a 16-byte key');
  const k0 = readLe64(key, 0);
  const k1 = readLe64(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;

  const round = (): void => {
    v0 = (v0 + v1) & MASK; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & MASK; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & MASK; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };

  const whole = data.length - (data.length % 8);
  for (let off = 0; off < whole; off += 8) {
    const m = readLe64(data, off);
    v3 ^= m; round(); round(); v0 ^= m;
  }
  // Last block: the remaining bytes, zero padded, with the length's low byte on top.
  let last = BigInt(data.length & 0xff) << 56n;
  for (let i = data.length - 1; i >= whole; i--) last |= BigInt(data[i]!) << BigInt((i - whole) * 8);
  v3 ^= last; round(); round(); v0 ^= last;

  v2 ^= 0xffn;
  round(); round(); round(); round();
  return (v0 ^ v1 ^ v2 ^ v3) & MASK;
}

/** A key written as 32 hex digits (the way systemd spells its fixed 128-bit keys). */
export function hexKey(hex: string): Uint8Array {
  const clean = hex.replace(/[^0-9a-f]/gi, '');
  if (clean.length !== 32) throw new RangeError(`key must be 16 bytes: ${hex}`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}
