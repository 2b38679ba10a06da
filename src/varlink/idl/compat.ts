/**
 * What systemd 257's IDL parser (sd-varlink, used by varlinkctl and every systemd service) refuses
 * although the varlink.org grammar, and berth's parser, accept it.
 *
 * sd-varlink reads a field type as: at most one `?`, then at most one `[]` or `[string]`, then an
 * element type (primitive, named type, or a non-empty anonymous struct/enum). It predates `any`,
 * and it refuses `()` anywhere except as a method's input/output or an error's parameters.
 * berth checks its own interfaces with this so that varlinkctl and systemd clients can read them.
 */
import type { Interface, StructType, EnumType, TypeExpr } from './ast.js';
import { formatType } from './printer.js';

export interface CompatibilityProblem {
  /** `Member`, `Member.field`, `Method.input.field`, `Method.output.field`, nested as `….field.sub`. */
  path: string;
  reason: string;
}

export function systemdCompatibilityProblems(iface: Interface): CompatibilityProblem[] {
  const problems: CompatibilityProblem[] = [];
  for (const m of iface.members) {
    if (m.kind === 'type') {
      const empty = m.type.kind === 'struct' ? m.type.fields.length === 0 : m.type.values.length === 0;
      if (empty) problems.push({ path: m.name, reason: "empty named type '()': systemd refuses it as ambiguous" });
      checkEntries(m.type, m.name, problems);
    } else if (m.kind === 'method') {
      checkEntries(m.input, `${m.name}.input`, problems);
      checkEntries(m.output, `${m.name}.output`, problems);
    } else {
      checkEntries(m.type, m.name, problems);
    }
  }
  return problems;
}

function checkEntries(t: StructType | EnumType, path: string, problems: CompatibilityProblem[]): void {
  if (t.kind === 'enum') return;
  for (const field of t.fields) checkType(field.type, `${path}.${field.name}`, problems);
}

function checkType(t: TypeExpr, path: string, problems: CompatibilityProblem[]): void {
  const written = formatType(t);
  const reasons = new Set<string>();
  const report = (reason: string): void => {
    if (reasons.has(reason)) return;
    reasons.add(reason);
    problems.push({ path, reason: `${reason} (in '${written}')` });
  };
  // Walk the prefix chain iteratively: `?` at most once and first, then at most one collection.
  let cur = t;
  let nullable = false;
  let collection = false;
  for (;;) {
    if (cur.kind === 'nullable') {
      if (collection) report("'?' after '[]' or '[string]': systemd allows '?' only as the first prefix");
      else if (nullable) report("more than one '?': systemd allows a single nullable prefix");
      nullable = true;
    } else if (cur.kind === 'array' || cur.kind === 'map') {
      if (collection) report("nested collection: systemd allows at most one '[]' or '[string]' per type");
      collection = true;
    } else {
      break;
    }
    cur = cur.inner;
  }
  switch (cur.kind) {
    case 'any':
      report("'any' is not known to systemd before version 260");
      break;
    case 'struct':
      if (cur.fields.length === 0) report("empty anonymous struct '()' as a field type: systemd 257 refuses it");
      checkEntries(cur, path, problems);
      break;
    case 'enum':
      if (cur.values.length === 0) report("empty anonymous enum '()' as a field type: systemd 257 refuses it");
      break;
    default:
      break;
  }
}
