/**
 * User-namespace ID maps: `/proc/PID/uid_map` and `/proc/PID/gid_map`.
 *
 * Each line of such a file holds three unsigned decimal numbers: the first ID inside the namespace,
 * the first ID outside it (on the host), and how many consecutive IDs the line maps. A process in
 * the host's own user namespace shows the identity line `0 0 4294967295`.
 */
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

export interface IdMapLine {
  /** First ID inside the user namespace. */
  readonly inside: number;
  /** First ID on the host (outside the namespace). */
  readonly outside: number;
  /** Number of IDs mapped; at least 1. */
  readonly count: number;
}

/** A map as read from /proc, or the errno that reading it failed with (e.g. ENOENT once the leader is gone). */
export type IdMapSource = readonly IdMapLine[] | { readonly errno: number };

export class IdMapParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdMapParseError';
  }
}

const U32_MAX = 0xffffffff;

/**
 * Parses the text of a uid_map/gid_map file. Blank lines are ignored; anything else that is not three
 * unsigned 32-bit numbers, or a line whose range would run past 2^32, throws IdMapParseError.
 */
export function parseIdMap(text: string): IdMapLine[] {
  const lines: IdMapLine[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 3 || !parts.every((p) => /^[0-9]{1,10}$/.test(p))) {
      throw new IdMapParseError(`line ${lineNo}: expected "INSIDE OUTSIDE COUNT", got ${JSON.stringify(raw)}`);
    }
    const [inside, outside, count] = parts.map(Number) as [number, number, number];
    if (inside > U32_MAX || outside > U32_MAX || count > U32_MAX || count === 0) {
      throw new IdMapParseError(`line ${lineNo}: value out of range in ${JSON.stringify(raw)}`);
    }
    if (inside + count - 1 > U32_MAX || outside + count - 1 > U32_MAX) {
      throw new IdMapParseError(`line ${lineNo}: range runs past 2^32 in ${JSON.stringify(raw)}`);
    }
    lines.push({ inside, outside, count });
  }
  return lines;
}

/** Prints a map the way the kernel does (for logs and tests); `parseIdMap(formatIdMap(m))` equals `m`. */
export function formatIdMap(map: readonly IdMapLine[]): string {
  return map.map((l) => `${String(l.inside).padStart(10)} ${String(l.outside).padStart(10)} ${String(l.count).padStart(10)}\n`).join('');
}

function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const n = code ? (osConstants.errno as Record<string, number>)[code] : undefined;
  return typeof n === 'number' ? n : osConstants.errno.EIO;
}

function readOne(path: string): IdMapSource {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { errno: errnoOf(e) };
  }
  try {
    return parseIdMap(text);
  } catch {
    return { errno: osConstants.errno.EBADMSG };
  }
}

/**
 * Reads the uid and gid maps of a process. Never throws: a map that cannot be read comes back as
 * `{errno}`. Synchronous on purpose: /proc is memory, and indexing a machine before its Register
 * is answered means a lookup right after it already finds the users. `procRoot` exists for tests
 * (a directory laid out like /proc).
 */
export function readIdMaps(pid: number, procRoot = '/proc'): { uidMap: IdMapSource; gidMap: IdMapSource } {
  return { uidMap: readOne(`${procRoot}/${pid}/uid_map`), gidMap: readOne(`${procRoot}/${pid}/gid_map`) };
}

export function isIdMapError(m: IdMapSource): m is { readonly errno: number } {
  return !Array.isArray(m);
}

/**
 * The host ID of `id` inside the user namespace of process `pid`, read from its uid_map or gid_map
 * as it is now; undefined when the ID is not mapped or the process is gone.
 */
export function mapIdToHost(pid: number, file: 'uid_map' | 'gid_map', id: number): number | undefined {
  const map = readOne(`/proc/${pid}/${file}`);
  if (isIdMapError(map)) return undefined;
  const line = map.find((l) => id >= l.inside && id < l.inside + l.count);
  return line === undefined ? undefined : line.outside + (id - line.inside);
}
