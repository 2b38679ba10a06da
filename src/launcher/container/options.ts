/** What a container launch needs, validated: the CLI and berthd's launch service both build this. */
import { randomUUID } from 'node:crypto';
import type { PrivateUsers } from '../uid-range.js';
import type { RegisterMode } from '../registry-client.js';

export interface BindMount { source: string; target: string; readOnly: boolean }
export interface Credential { id: string; data: Buffer }
export type LinkJournal = 'no' | 'host' | 'try-host' | 'guest' | 'try-guest' | 'auto';

export interface ContainerOptions {
  directory: string;
  name: string;
  uuid: string; // with dashes
  boot: boolean;
  /** With boot: arguments for init; without: the command to run as PID 1. */
  command: string[];
  privateUsers: PrivateUsers;
  binds: BindMount[];
  setenv: [string, string][];
  credentials: Credential[];
  linkJournal: LinkJournal;
  networkVeth: boolean;
  register: RegisterMode;
  runtimeDir: string;
  notifyReady: boolean;
  ttys: string[];
  /** Sockets handed to PID 1 as fd 3… (LISTEN_FDS). */
  listenFds: number[];
  listenFdNames?: string;
  killSignal: number;
  quiet: boolean;
  /** Where the host keeps journals (`--link-journal`); /var/log/journal unless a test moves it. */
  hostJournalDir: string;
  /** Where to print the container's /dev/console output; default: the launcher's stdout. */
  consoleOutput?: NodeJS.WritableStream;
}

export class ContainerOptionError extends Error {
  override name = 'ContainerOptionError';
}

export const SIGRTMIN_PLUS_3 = 37;

/** Machine names follow systemd's hostname rules: 1–64 chars of [A-Za-z0-9-_.], labels not empty. */
export function validMachineName(name: string): boolean {
  if (name.length < 1 || name.length > 64) return false;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) return false;
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) return false;
  if (name.startsWith('-')) return false;
  return true;
}

/** nspawn's default name: the last path component of the directory. */
export function nameFromDirectory(dir: string): string {
  const base = dir.replace(/\/+$/, '').split('/').pop() ?? '';
  return base.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '').slice(0, 64);
}

export function normalizeUuid(s: string): string {
  const hex = s.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex) || /^0+$/.test(hex)) throw new ContainerOptionError(`invalid UUID '${s}'`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function newUuid(): string {
  return randomUUID();
}

export function validCredentialId(id: string): boolean {
  return id.length > 0 && id.length <= 255 && !id.includes('/') && id !== '.' && id !== '..';
}

/** C-style escapes as nspawn accepts them in --set-credential values. */
export function unescapeC(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch !== '\\' || i + 1 >= s.length) { out.push(...Buffer.from(ch, 'utf8')); continue; }
    const n = s[++i]!;
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, '"': 34, "'": 39, s: 32, '0': 0 };
    if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) { out.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; }
    else if (n in simple) out.push(simple[n]!);
    else throw new ContainerOptionError(`invalid escape '\\${n}' in credential value`);
  }
  return Buffer.from(out);
}
