// The DNS pieces the resolve hook needs: whether a name is a valid domain name (as resolved checks a question),
// the parent domains of a name, and an address record in DNS wire format (what the hook's `raw` carries).

/** DNS types and class the hook answers. */
export const DNS_TYPE_A = 1;
export const DNS_TYPE_AAAA = 28;
export const DNS_CLASS_IN = 1;
/** Response codes the hook returns. */
export const DNS_RCODE_SUCCESS = 0;
export const DNS_RCODE_NXDOMAIN = 3;

const LABEL_MAX = 63;
const NAME_MAX = 253;

/**
 * The labels of a domain name in text form, or undefined when it is not a valid name: labels are split at
 * unescaped dots, `\DDD` and `\c` are one byte each, no label is empty (a single trailing dot is allowed and
 * "" or "." is the root), no label is longer than 63 bytes and the whole name no longer than 253.
 */
export function dnsLabels(name: string): string[] | undefined {
  if (name === '' || name === '.') return [];
  const labels: string[] = [];
  let label = '';
  let bytes = 0;
  let total = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === '.') {
      if (bytes === 0) return undefined;
      labels.push(label);
      total += bytes + (labels.length > 1 ? 1 : 0);
      label = '';
      bytes = 0;
      continue;
    }
    if (c === '\\') {
      const digits = /^\d{3}/.exec(name.slice(i + 1));
      if (digits) {
        if (Number(digits[0]) > 255) return undefined;
        label += name.slice(i, i + 4);
        i += 3;
      } else {
        if (i + 1 >= name.length) return undefined;
        label += name.slice(i, i + 2);
        i += 1;
      }
      bytes += 1;
    } else {
      label += c;
      bytes += Buffer.byteLength(c);
    }
    if (bytes > LABEL_MAX) return undefined;
  }
  if (bytes > 0) {
    labels.push(label);
    total += bytes + (labels.length > 1 ? 1 : 0);
  }
  return total > NAME_MAX ? undefined : labels;
}

/** The proper parent domains of a valid name, nearest first ("a.b.c" gives "b.c", then "c"). */
export function parentDomains(labels: string[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < labels.length; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/**
 * An A or AAAA record of `name` with TTL 0 in DNS wire format: the name as length-prefixed labels ending with
 * the root, type, class IN, TTL, data length and the address bytes. `name` is a machine name (plain labels).
 */
export function addressRecordWire(name: string, type: number, address: number[]): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter((l) => l !== '')) {
    const b = Buffer.from(label);
    parts.push(Buffer.from([b.length]), b);
  }
  const fixed = Buffer.alloc(11);
  fixed.writeUInt8(0, 0);
  fixed.writeUInt16BE(type, 1);
  fixed.writeUInt16BE(DNS_CLASS_IN, 3);
  fixed.writeUInt32BE(0, 5);
  fixed.writeUInt16BE(address.length, 9);
  return Buffer.concat([...parts, fixed, Buffer.from(address)]);
}
