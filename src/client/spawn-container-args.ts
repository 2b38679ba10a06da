/**
 * berth-spawn's command line for containers (the options of systemd-nspawn that berth has), parsed into
 * the ContainerOptions a launch takes, and how long a clean stop may take. Options come first, then the
 * command, as nspawn reads them; `--vm` before any "--" hands the whole command line to the VM parser.
 */
import fs from 'node:fs';
import path from 'node:path';
import { credentialNameRefusal, isValidCredentialName } from '../domain/credential-name.js';
import { parsePrivateUsers, type PrivateUsers } from '../launcher/uid-range.js';
import { parseSetenv } from '../launcher/container/environment.js';
import {
  type BindMount, type ContainerOptions, type Credential, type LinkJournal,
} from '../launcher/container/options.js';
import { cunescapeBytes } from '../domain/c-escape.js';
import { newUuid, parseMachineUuid } from '../domain/id128.js';
import { defaultMachineName, defaultNameRefusal, isValidMachineName, machineNameRefusal } from '../domain/machine-name.js';
import { parseBind as parseBindSpec, parseBoolean } from '../domain/option-values.js';
import { DEFAULT_RUNTIME_DIR } from '../domain/runtime-paths.js';
import { parseSignal as signalNumber, SIGRTMIN_PLUS_3 } from '../domain/signals.js';
import type { RegisterMode } from '../launcher/registry-client.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface SpawnArgs {
  help: boolean;
  /** --version: print the version and exit */
  version?: boolean;
  vm: boolean;
  options?: ContainerOptions;
  stopTimeoutMs: number;
}

/** A --bind/--bind-ro value; berth binds recursively, so of the mount options only rbind and norbind are taken. */
export function parseBind(value: string, readOnly: boolean): BindMount {
  let b;
  try { b = parseBindSpec(value, readOnly); } catch (e) { throw new UsageError((e as Error).message); }
  if (!['rbind', 'norbind', ''].includes(b.options)) throw new UsageError(`unsupported bind options '${b.options}' (berth binds recursively)`);
  return { source: b.source, target: b.target, readOnly };
}

function parseBool(v: string, name: string): boolean {
  const b = parseBoolean(v);
  if (b === undefined) throw new UsageError(`--${name} expects yes or no, not '${v}'`);
  return b;
}

export function parseSignal(v: string): number {
  const n = signalNumber(v);
  if (n === undefined) throw new UsageError(`unknown signal '${v}'`);
  return n;
}

// Options that take a value; flags are handled separately.
const WITH_VALUE = new Set(['directory', 'machine', 'uuid', 'private-users', 'bind', 'bind-ro', 'setenv', 'set-credential',
  'load-credential', 'link-journal', 'container-ttys', 'notify-ready', 'kill-signal', 'stop-timeout', 'register', 'runtime-dir']);
const SHORT_VALUE: Record<string, string> = { D: 'directory', M: 'machine', E: 'setenv' };
const SHORT_FLAG: Record<string, string> = { b: 'boot', U: 'U', j: 'j', n: 'network-veth', q: 'quiet', h: 'help' };
const FLAGS = new Set(['boot', 'network-veth', 'quiet', 'help', 'vm', 'version']);

/** Parse berth-spawn's command line (options first, then the command, as nspawn does). */
export function parseSpawnArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, pid = process.pid): SpawnArgs {
  if (argv.includes('--vm') && argv.indexOf('--vm') < (argv.includes('--') ? argv.indexOf('--') : Infinity)) {
    return { help: false, vm: true, stopTimeoutMs: 0 };
  }
  const opts: { name: string; value?: string }[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { i++; break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (WITH_VALUE.has(name)) {
        let value = eq < 0 ? argv[++i] : a.slice(eq + 1);
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        if (name === 'notify-ready' && eq < 0 && parseBoolean(value) === undefined) { i--; value = 'yes'; }
        opts.push({ name, value });
      } else if (FLAGS.has(name)) {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        opts.push({ name });
      } else throw new UsageError(`unknown option --${name} (see --help)`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const c = a[k]!;
        if (SHORT_VALUE[c]) {
          const rest = a.slice(k + 1);
          const value = rest || argv[++i];
          if (value === undefined) throw new UsageError(`-${c} needs a value`);
          opts.push({ name: SHORT_VALUE[c]!, value });
          break;
        }
        if (SHORT_FLAG[c]) { opts.push({ name: SHORT_FLAG[c]! }); continue; }
        throw new UsageError(`unknown option -${c} (see --help)`);
      }
      continue;
    }
    break; // the command starts here
  }
  const command = argv.slice(i);

  let directory: string | undefined;
  let name: string | undefined;
  let uuid: string | undefined;
  let boot = false;
  let privateUsers: PrivateUsers = { mode: 'no' };
  const binds: BindMount[] = [];
  const setenv: [string, string][] = [];
  const credentials: Credential[] = [];
  let linkJournal: LinkJournal = 'no';
  let networkVeth = false;
  let ttys: string[] = [];
  let notifyReady: boolean | undefined;
  let killSignal = SIGRTMIN_PLUS_3;
  let stopTimeoutMs = 10_000;
  let register: RegisterMode = 'auto';
  let runtimeDir = DEFAULT_RUNTIME_DIR;
  let quiet = false;
  let help = false;
  let version = false;

  const addCredential = (id: string, data: Buffer): void => {
    if (!isValidCredentialName(id)) throw new UsageError(credentialNameRefusal(id));
    if (credentials.some((c) => c.id === id)) throw new UsageError(`credential '${id}' given twice`);
    credentials.push({ id, data });
  };

  for (const { name: n, value: v = '' } of opts) {
    switch (n) {
      case 'directory': directory = v; break;
      case 'machine':
        if (!isValidMachineName(v)) throw new UsageError(machineNameRefusal(v));
        name = v;
        break;
      case 'uuid':
        try { uuid = parseMachineUuid(v); } catch (e) { throw new UsageError(`--uuid: ${(e as Error).message}`); }
        break;
      case 'boot': boot = true; break;
      case 'U': privateUsers = { mode: 'pick' }; break;
      case 'private-users':
        try { privateUsers = parsePrivateUsers(v); } catch (e) { throw new UsageError((e as Error).message); }
        break;
      case 'bind': binds.push(parseBind(v, false)); break;
      case 'bind-ro': binds.push(parseBind(v, true)); break;
      case 'setenv':
        try { setenv.push(parseSetenv(v, env)); } catch (e) { throw new UsageError((e as Error).message); }
        break;
      case 'set-credential': {
        const c = v.indexOf(':');
        if (c <= 0) throw new UsageError(`--set-credential=${v}: expected ID:VALUE`);
        let data: Buffer;
        try { data = cunescapeBytes(v.slice(c + 1)); } catch (e) { throw new UsageError(`--set-credential: ${(e as Error).message}`); }
        addCredential(v.slice(0, c), data);
        break;
      }
      case 'load-credential': {
        const c = v.indexOf(':');
        if (c <= 0) throw new UsageError(`--load-credential=${v}: expected ID:PATH`);
        const file = v.slice(c + 1);
        let data: Buffer;
        try { data = fs.readFileSync(file); } catch (e) { throw new UsageError(`--load-credential: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
        addCredential(v.slice(0, c), data);
        break;
      }
      case 'link-journal':
        if (!['no', 'host', 'try-host', 'guest', 'try-guest', 'auto'].includes(v)) throw new UsageError(`invalid --link-journal=${v}`);
        linkJournal = v as LinkJournal;
        break;
      case 'j': linkJournal = 'try-guest'; break;
      case 'network-veth': networkVeth = true; break;
      case 'container-ttys':
        ttys = v.split(/[,\s]+/).filter(Boolean);
        if (ttys.some((t) => !/^[A-Za-z0-9/_.-]+$/.test(t) || t.includes('..'))) throw new UsageError(`invalid --container-ttys=${v}`);
        break;
      case 'notify-ready': notifyReady = parseBool(v, n); break;
      case 'kill-signal': killSignal = parseSignal(v); break;
      case 'stop-timeout': {
        const s = Number(v);
        if (!Number.isFinite(s) || s < 0) throw new UsageError(`invalid --stop-timeout=${v}`);
        stopTimeoutMs = s * 1000;
        break;
      }
      case 'register': {
        const b = v === 'auto' ? undefined : parseBoolean(v);
        if (b === undefined && v !== 'auto') throw new UsageError(`invalid --register=${v}: use yes, no or auto`);
        register = b === undefined ? 'auto' : b ? 'yes' : 'no';
        break;
      }
      case 'runtime-dir':
        if (!path.isAbsolute(v)) throw new UsageError('--runtime-dir must be an absolute path');
        runtimeDir = path.normalize(v).replace(/(.)\/+$/, '$1');
        break;
      case 'quiet': quiet = true; break;
      case 'help': help = true; break;
      case 'version': version = true; break;
    }
  }
  if (help) return { help: true, vm: false, stopTimeoutMs };
  if (version) return { help: false, version: true, vm: false, stopTimeoutMs };
  if (!directory) throw new UsageError('no container directory given (-D DIR)');
  directory = path.resolve(directory);
  name ??= defaultMachineName(directory);
  if (name === undefined) throw new UsageError(defaultNameRefusal(directory));

  // Sockets handed to us (systemd-socket-activate, systemd units) go on to PID 1.
  const listenFds: number[] = [];
  let listenFdNames: string | undefined;
  if (env.LISTEN_FDS && env.LISTEN_PID === String(pid)) {
    const n = Number(env.LISTEN_FDS);
    if (!Number.isInteger(n) || n < 0 || n > 64) throw new UsageError(`invalid LISTEN_FDS=${env.LISTEN_FDS}`);
    for (let k = 0; k < n; k++) listenFds.push(3 + k);
    listenFdNames = env.LISTEN_FDNAMES;
  }

  return {
    help: false, vm: false, stopTimeoutMs,
    options: {
      directory, name, uuid: uuid ?? newUuid(), boot, command, privateUsers, binds, setenv, credentials, linkJournal,
      networkVeth, register, runtimeDir, notifyReady: notifyReady ?? boot, ttys, listenFds, listenFdNames,
      killSignal, quiet, hostJournalDir: env.BERTH_HOST_JOURNAL_DIR || '/var/log/journal',
    },
  };
}
