// machined-compatible state: RUNTIME/systemd/machines/NAME files and `unit:UNIT → NAME` symlinks.
//
// File format as the real machined 262 writes it (observed):
//   # This is private data. Do not parse.
//   NAME=foo
//   UID=<registering uid>
//   SCOPE=machine-foo.scope
//   SERVICE=...        ROOT=...        ID=<32 hex>
//   LEADER=<pid>       LEADER_PIDFDID=<inode>
//   SUPERVISOR=<pid>   SUPERVISOR_PIDFDID=<inode>
//   CLASS=container|vm
//   REALTIME=<µs>      MONOTONIC=<µs>
//   NETIF=<ifindex> <ifindex>...
//   VSOCK_CID=<cid, 4294967295 when none>
//   SSH_ADDRESS=...    SSH_PRIVATE_KEY_PATH=...
//   CONTROL_ADDRESS=<socket path>
// in that order, lines omitted when unset; SCOPE, SERVICE, ROOT and SSH_PRIVATE_KEY_PATH are C-escaped (`\\`,
// `\"`, `\'`, `\n`, `\t`..., octal `\ooo` for other control and non-ASCII bytes), as 257 wrote them (262 quotes
// some of them shell-style instead; both read back); CONTROL_ADDRESS is written as 262 writes it, in double
// quotes with `\`, `"`, `` ` `` and `$` escaped when it holds characters a shell would treat specially, a newline
// kept as it is. 257 wrote neither UID=0, the SUPERVISOR lines, VSOCK_CID without a CID nor CONTROL_ADDRESS;
// machined ignores keys it does not know. 262 writes no SUBGROUP: berth works it out again from the leader's
// cgroup. The `unit:` links are what libsystemd's sd_pid_get_machine_name() (and so `ps -o machine`) read.

import fs from 'node:fs';
import path from 'node:path';
import type { Machine, MachineClass, SupervisorInfo } from './machine.js';
import { cescape, cunescape } from '../../domain/c-escape.js';

/** State files are read leniently: an escape that means nothing stays as written. */
const RELAX = { relax: true };

export const STATE_HEADER = '# This is private data. Do not parse.';

/** What a state file says about a machine; every field optional, since files may come from anywhere. */
export interface StateRecord {
  name: string;
  uid?: number;
  unit?: string;
  scopeJob?: string;
  service?: string;
  rootDirectory?: string;
  id?: string;
  leader?: number;
  leaderPidfdId?: number;
  supervisor?: SupervisorInfo;
  class?: MachineClass | 'host';
  realtime?: number;
  monotonic?: number;
  ifIndices?: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  controlAddress?: string;
  subgroup?: string;
}

/** VMADDR_CID_ANY: what 262 writes as VSOCK_CID for a machine without one. */
const NO_VSOCK_CID = 0xffffffff;

/** Characters after which 262 puts a value in double quotes (whitespace, quotes, shell syntax, globs). */
const NEEDS_QUOTES = /[\s"'\\`$*?[\]{}|&;<>()~#!]/;

/** A value as 262 writes CONTROL_ADDRESS: bare when harmless, else double-quoted with `\ " ` $` escaped. */
function envQuote(v: string): string {
  return NEEDS_QUOTES.test(v) ? `"${v.replace(/[\\"`$]/g, (c) => `\\${c}`)}"` : v;
}

/** The inverse of envQuote for a value whose quotes were already taken off. */
const envUnquote = (v: string): string => v.replace(/\\([\\"`$])/g, '$1');

/** The state file text for a machine, in machined's key order. */
export function formatStateFile(m: Machine): string {
  const lines = [STATE_HEADER, `NAME=${m.name}`];
  lines.push(`UID=${m.registeredBy}`);
  if (m.unit) lines.push(`SCOPE=${cescape(m.unit)}`);
  if (m.service !== undefined) lines.push(`SERVICE=${cescape(m.service)}`);
  if (m.rootDirectory !== undefined) lines.push(`ROOT=${cescape(m.rootDirectory)}`);
  if (m.id) lines.push(`ID=${m.id}`);
  lines.push(`LEADER=${m.leader.pid}`);
  if (m.leader.pidfdId !== undefined) lines.push(`LEADER_PIDFDID=${m.leader.pidfdId}`);
  if (m.supervisor) lines.push(`SUPERVISOR=${m.supervisor.pid}`);
  if (m.supervisor?.pidfdId !== undefined) lines.push(`SUPERVISOR_PIDFDID=${m.supervisor.pidfdId}`);
  lines.push(`CLASS=${m.class}`);
  lines.push(`REALTIME=${m.timestamp.realtime}`);
  lines.push(`MONOTONIC=${m.timestamp.monotonic}`);
  if (m.ifIndices.length > 0) lines.push(`NETIF=${m.ifIndices.join(' ')}`);
  lines.push(`VSOCK_CID=${m.vSockCid ?? NO_VSOCK_CID}`);
  if (m.sshAddress !== undefined) lines.push(`SSH_ADDRESS=${m.sshAddress}`);
  if (m.sshPrivateKeyPath !== undefined) lines.push(`SSH_PRIVATE_KEY_PATH=${cescape(m.sshPrivateKeyPath)}`);
  if (m.controlAddress !== undefined) lines.push(`CONTROL_ADDRESS=${envQuote(m.controlAddress)}`);
  return lines.join('\n') + '\n';
}

/**
 * The file's lines, a double-quoted value that runs over a newline joined with it (262 keeps a newline of
 * CONTROL_ADDRESS inside the quotes).
 */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let open: string | undefined;
  for (const line of text.split('\n')) {
    if (open !== undefined) open += `\n${line}`;
    else open = line;
    if (!opensQuote(open)) {
      out.push(open);
      open = undefined;
    }
  }
  if (open !== undefined) out.push(open);
  return out;
}

/** Whether `KEY="...` starts a double-quoted value that this text does not close. */
function opensQuote(line: string): boolean {
  const eq = line.indexOf('=');
  if (eq <= 0 || line[eq + 1] !== '"') return false;
  for (let i = eq + 2; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === '"') return false;
  }
  return true;
}

export type ParseResult = { ok: true; record: StateRecord; warnings: string[] } | { ok: false; reason: string };

const uintOf = (v: string): number | undefined => (/^\d{1,16}$/.test(v) ? Number(v) : undefined);

/**
 * Parse a state file (berth's or machined's). Unknown keys and malformed values are skipped with a warning;
 * a file without a usable NAME is refused.
 */
export function parseStateFile(text: string): ParseResult {
  const values = new Map<string, string>();
  const quoted = new Set<string>();
  const warnings: string[] = [];
  if (text.includes('\0')) return { ok: false, reason: 'contains NUL bytes' };
  for (const raw of logicalLines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      warnings.push(`ignoring malformed line: ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    let value = line.slice(eq + 1);
    const key = line.slice(0, eq).trim();
    // Values written by other tools may be quoted.
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) {
      value = value.slice(1, -1);
      quoted.add(key);
    }
    values.set(key, value);
  }
  const name = values.get('NAME');
  if (name === undefined || name === '') return { ok: false, reason: 'no NAME' };
  const record: StateRecord = { name };
  const num = (key: string, set: (n: number) => void) => {
    const v = values.get(key);
    if (v === undefined) return;
    const n = uintOf(v);
    if (n === undefined) warnings.push(`ignoring bad ${key}=${JSON.stringify(v.slice(0, 40))}`);
    else set(n);
  };
  for (const [key, v] of values) {
    switch (key) {
      case 'NAME':
        break;
      case 'UID':
        num(key, (n) => (record.uid = n));
        break;
      case 'SCOPE':
        if (v) record.unit = cunescape(v, RELAX);
        break;
      case 'SCOPE_JOB':
        if (v) record.scopeJob = v;
        break;
      case 'SERVICE':
        record.service = cunescape(v, RELAX);
        break;
      case 'ROOT':
        record.rootDirectory = cunescape(v, RELAX);
        break;
      case 'ID':
        if (/^[0-9a-f]{32}$/.test(v)) record.id = v;
        else if (v) warnings.push(`ignoring bad ID=${JSON.stringify(v.slice(0, 40))}`);
        break;
      case 'LEADER':
        num(key, (n) => (record.leader = n));
        break;
      case 'LEADER_PIDFDID':
        num(key, (n) => (record.leaderPidfdId = n));
        break;
      case 'CLASS':
        if (v === 'container' || v === 'vm' || v === 'host') record.class = v;
        else warnings.push(`ignoring bad CLASS=${JSON.stringify(v.slice(0, 40))}`);
        break;
      case 'REALTIME':
        num(key, (n) => (record.realtime = n));
        break;
      case 'MONOTONIC':
        num(key, (n) => (record.monotonic = n));
        break;
      case 'NETIF': {
        const parts = v.split(/\s+/).filter((p) => p.length > 0);
        const ifs = parts.map(uintOf).filter((n): n is number => n !== undefined && n > 0);
        if (ifs.length !== parts.length) warnings.push(`ignoring bad entries in NETIF=${JSON.stringify(v.slice(0, 40))}`);
        record.ifIndices = ifs;
        break;
      }
      case 'VSOCK_CID':
        num(key, (n) => {
          if (n !== NO_VSOCK_CID) record.vSockCid = n;
        });
        break;
      case 'SSH_ADDRESS':
        record.sshAddress = v;
        break;
      case 'SSH_PRIVATE_KEY_PATH':
        record.sshPrivateKeyPath = cunescape(v, RELAX);
        break;
      case 'SUBGROUP':
        if (v) record.subgroup = v;
        break;
      case 'SUPERVISOR':
        num(key, (n) => (record.supervisor = { ...record.supervisor, pid: n }));
        break;
      case 'SUPERVISOR_PIDFDID':
        num(key, (n) => (record.supervisor = { pid: record.supervisor?.pid ?? 0, pidfdId: n }));
        break;
      case 'CONTROL_ADDRESS':
        if (v) record.controlAddress = quoted.has(key) ? envUnquote(v) : v;
        break;
      default:
        warnings.push(`ignoring unknown key ${key}`);
    }
  }
  return { ok: true, record, warnings };
}

/** One entry found when scanning the state directory. */
export type StateEntry = { name: string; text: string } | { name: string; error: string };

/** open(2) flags of a fresh temporary file (written, then renamed over the real name). */
const TMP_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC;

/**
 * Reads and writes the state directory (RUNTIME/systemd/machines). All calls are synchronous and cheap:
 * the directory is on a memory file system, and a Register is answered only once its file is in place
 * (and an Unregister once it is gone), so a kill -9 right after the answer finds exactly the acknowledged
 * machines; the unit link follows just after the answer, and restore rebuilds it. The writes use as few system calls as an
 * atomic replacement allows (open, write, close, rename; symlink) and raise no exception on the
 * way, which in Node costs more than the system call itself.
 */
export class StateStore {
  /** Temp names are unique per write, so no leftover has to be removed before the next one is made. */
  #tmpSeq = 0;

  constructor(readonly dir: string) {}

  ensureDir(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }

  /** Write a machine's file atomically (temp file + rename). */
  write(m: Machine): void {
    const file = `${this.dir}/${m.name}`;
    const tmp = this.#tmp();
    const fd = fs.openSync(tmp, TMP_FLAGS, 0o644);
    try {
      fs.writeSync(fd, formatStateFile(m));
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  }

  /** A temp name no other write of this process uses; removeTemp() finds those an interrupted write left. */
  #tmp(): string {
    return `${this.dir}/.#${process.pid}.${++this.#tmpSeq}.tmp`;
  }

  /**
   * Point `unit:UNIT` at NAME. Usually no link is there (a machine's link goes with it), so the link is
   * made in place; a stale one is replaced atomically (temp link + rename).
   */
  linkUnit(unit: string, name: string): void {
    const link = `${this.dir}/unit:${unit}`;
    try {
      fs.symlinkSync(name, link);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const tmp = this.#tmp();
    fs.symlinkSync(name, tmp);
    fs.renameSync(tmp, link);
  }

  /** Remove a machine's file (its unit link is unlinkUnit's). */
  forgetFile(name: string): void {
    try {
      fs.unlinkSync(`${this.dir}/${name}`);
    } catch {
      /* already gone */
    }
  }

  /** Remove a machine's file, and its unit link if that still points at it. */
  remove(name: string, unit?: string): void {
    this.forgetFile(name);
    if (unit) this.unlinkUnit(unit, name);
  }

  /**
   * Remove the link of `unit`; with `name`, only while it points at that machine. Without, it is not read
   * first: the registry removes a link it holds as its machine's own (it admits one machine per unit).
   */
  unlinkUnit(unit: string, name?: string): void {
    const link = `${this.dir}/unit:${unit}`;
    try {
      if (name !== undefined && fs.readlinkSync(link) !== name) return;
      fs.unlinkSync(link);
    } catch {
      /* already gone */
    }
  }

  /** Every machine file (not links, not temp files), read but not parsed. */
  scan(): StateEntry[] {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(this.dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const out: StateEntry[] = [];
    for (const d of names) {
      if (d.name.startsWith('unit:') || d.name.startsWith('.')) continue;
      if (!d.isFile()) continue;
      try {
        out.push({ name: d.name, text: fs.readFileSync(path.join(this.dir, d.name), 'utf8') });
      } catch (e) {
        out.push({ name: d.name, error: (e as Error).message });
      }
    }
    return out;
  }

  /** Every `unit:` link: unit → target name. */
  links(): Map<string, string> {
    const out = new Map<string, string>();
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const n of names) {
      if (!n.startsWith('unit:')) continue;
      try {
        out.set(n.slice('unit:'.length), fs.readlinkSync(path.join(this.dir, n)));
      } catch {
        /* not a link */
      }
    }
    return out;
  }

  /** Remove leftover temp files of an interrupted write. */
  removeTemp(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith('.#') && n.endsWith('.tmp')) {
        try {
          fs.unlinkSync(path.join(this.dir, n));
        } catch {
          /* raced */
        }
      }
    }
  }
}
