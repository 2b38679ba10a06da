// Values of command-line options and .berth settings that nspawn, vmspawn and berth read alike: booleans
// (systemd's parse_boolean words) and bind-mount specifications (SOURCE[:TARGET[:OPTIONS]]).

import path from 'node:path';

const TRUE_WORDS = new Set(['1', 'yes', 'y', 'true', 't', 'on']);
const FALSE_WORDS = new Set(['0', 'no', 'n', 'false', 'f', 'off']);

/** A boolean as systemd reads one (yes/no, true/false, on/off, 1/0, y/n, t/f; any case); undefined otherwise. */
export function parseBoolean(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  return undefined;
}

/** A refused option value; the message names the option. */
export class OptionValueError extends Error {
  override name = 'OptionValueError';
}

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** Split on ':' not preceded by a backslash; unescape "\:" and "\\". */
export function splitColons(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length && (s[i + 1] === ':' || s[i + 1] === '\\')) {
      cur += s[++i];
      continue;
    }
    if (c === ':') {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * `--bind`/`--bind-ro` (and Bind=/BindReadOnly=): SOURCE[:TARGET[:OPTIONS]], ":" inside a path written "\:".
 * Both paths absolute (TARGET defaults to SOURCE) and normalised. The mount options come back as written
 * (empty when none), for the caller to check against what it supports.
 */
export function parseBind(value: string, readOnly: boolean): BindMount & { options: string } {
  const option = readOnly ? '--bind-ro' : '--bind';
  const parts = splitColons(value);
  if (parts.length > 3 || !parts[0]) throw new OptionValueError(`${option}: expected SOURCE[:TARGET[:OPTIONS]], got "${value}"`);
  const [source, target = source, options = ''] = parts as [string, string?, string?];
  if (!path.isAbsolute(source)) throw new OptionValueError(`${option}: source must be an absolute path: "${value}"`);
  if (!path.isAbsolute(target)) throw new OptionValueError(`${option}: target must be an absolute path: "${value}"`);
  return { source: path.normalize(source), target: path.normalize(target), readOnly, options };
}
