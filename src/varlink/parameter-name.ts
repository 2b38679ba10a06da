/** Which top-level parameter a failed validation is about, as sd-varlink names it in InvalidParameter. */
import type { ValidationIssue } from './interface.js';

export function parameterName(errors: ValidationIssue[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return '';
  const top = e.instancePath.split('/')[1];
  if (top !== undefined && top !== '') return decodePointer(top);
  if (e.keyword === 'required') return String(e.params.missingProperty);
  if (e.keyword === 'additionalProperties') return String(e.params.additionalProperty);
  return '';
}

/** A JSON pointer segment back to the key it names. */
function decodePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}
