/**
 * Output helpers shared by the CLIs: JSON in the two forms varlinkctl prints (short: one line;
 * pretty: tab-indented with " : " after keys, as systemd's JSON printer does) and plain tables.
 */

export type JsonMode = 'short' | 'pretty';

export function formatJson(value: unknown, mode: JsonMode): string {
  return mode === 'short' ? JSON.stringify(value) : pretty(value, '');
}

function pretty(v: unknown, indent: string): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const inner = indent + '\t';
    return `[\n${v.map((x) => inner + pretty(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    const inner = indent + '\t';
    return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)} : ${pretty(x, inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Control characters in a cell would break the table: show them escaped. */
export function cell(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Columns padded to the widest cell; the last column is not padded. */
export function formatTable(header: string[] | undefined, rows: string[][]): string {
  const all = (header ? [header, ...rows] : rows).map((r) => r.map(cell));
  if (all.length === 0) return '';
  const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(' ').trimEnd())
    .join('\n') + '\n';
}

/** Right-aligned "Key: value" lines, as `varlinkctl info` and `machinectl status` print them. */
export function formatFields(fields: [string, string | string[] | undefined][]): string {
  const present = fields.filter(([, v]) => v !== undefined && (!Array.isArray(v) || v.length > 0)) as [string, string | string[]][];
  const width = Math.max(...present.map(([k]) => k.length));
  const out: string[] = [];
  for (const [k, v] of present) {
    const values = Array.isArray(v) ? v : [v];
    out.push(`${k.padStart(width)}: ${values[0]}`);
    for (const extra of values.slice(1)) out.push(`${' '.repeat(width + 2)}${extra}`);
  }
  return out.join('\n') + '\n';
}
