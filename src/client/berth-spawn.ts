#!/usr/bin/env node
/**
 * berth-spawn: start an OS container (or, with --vm, a VM) the way systemd-nspawn/vmspawn do, supervise
 * it until it ends, and exit with nspawn's codes (poweroff 0, reboot 133, failure: PID 1's status).
 *
 *   berth-spawn -D DIR [-M NAME] [OPTIONS…] [--boot [INIT ARGS…] | COMMAND…]
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parsePrivateUsers, type PrivateUsers } from '../launcher/uid-range.js';
import { parseSetenv } from '../launcher/container/environment.js';
import {
  ContainerOptionError, validCredentialId, type BindMount, type ContainerOptions, type Credential, type LinkJournal,
} from '../launcher/container/options.js';
import { cunescapeBytes } from '../domain/c-escape.js';
import { newUuid, parseMachineUuid } from '../domain/id128.js';
import { defaultMachineName, defaultNameRefusal, isValidMachineName, machineNameRefusal } from '../domain/machine-name.js';
import { parseBind as parseBindSpec, parseBoolean } from '../domain/option-values.js';
import { DEFAULT_RUNTIME_DIR } from '../domain/runtime-paths.js';
import { parseSignal as signalNumber, SIGRTMIN_PLUS_3 } from '../domain/signals.js';
import type { RegisterMode } from '../launcher/registry-client.js';
import type { Supervisor as SupervisorT } from '../launcher/supervisor.js';

const PROG = 'berth-spawn';

export const HELP = `${PROG} -D DIR [OPTIONS...] [--boot [ARGS...] | COMMAND [ARGS...]]
${PROG} --vm [VM OPTIONS...]        (see ${PROG} --vm --help)

Start an OS container from a directory tree, in its own user, PID, mount, UTS, IPC and cgroup
namespaces, in the cgroup scope machine.slice/machine-NAME.scope, registered with berthd.

  -D --directory=PATH        root directory of the container (required)
  -M --machine=NAME          machine name (default: the directory's last component)
     --uuid=UUID             container UUID (container_uuid=, machine ID of a fresh tree)
  -b --boot                  run the tree's init (systemd) instead of a command
  -U                         same as --private-users=pick
     --private-users=MODE    pick | yes | no | identity | SHIFT[:RANGE]   (default: no)
     --bind=SRC[:DST]        bind-mount a host path (":" in paths as "\\:")
     --bind-ro=SRC[:DST]     the same, read-only
  -E --setenv=NAME[=VALUE]   environment variable for PID 1
     --set-credential=ID:VALUE   credential in $CREDENTIALS_DIRECTORY (C escapes allowed)
     --load-credential=ID:PATH   credential read from a file
     --link-journal=MODE     no | host | try-host | guest | try-guest | auto
  -j                         same as --link-journal=try-guest
  -n --network-veth          veth pair: host0 inside, ve-NAME outside
     --container-ttys=LIST   comma-separated extra ttys (container_ttys=, e.g. pts/1)
     --notify-ready=BOOL     wait for READY=1 from PID 1 (default: yes with --boot, no otherwise)
     --kill-signal=SIGNAL    signal for a clean stop (default: SIGRTMIN+3)
     --stop-timeout=SECONDS  after that, kill every process of the scope (default: 10)
     --register=MODE         yes | no | auto: register with berthd (auto: if it runs; default)
     --runtime-dir=PATH      runtime directory prefix (default: /run)
  -q --quiet                 no status messages
     --vm                    start a virtual machine instead (options of systemd-vmspawn)
  -h --help                  this text

Sockets passed in with LISTEN_FDS/LISTEN_PID are handed to PID 1 as fds 3… (LISTEN_PID=1).
Exit status: 0 when the container powered off, 133 when it rebooted, otherwise PID 1's status.
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface SpawnArgs {
  help: boolean;
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

  const addCredential = (id: string, data: Buffer): void => {
    if (!validCredentialId(id)) throw new UsageError(`invalid credential name '${id}'`);
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
      case 'version': help = true; break;
    }
  }
  if (help) return { help: true, vm: false, stopTimeoutMs };
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

export async function main(argv: string[]): Promise<number> {
  let args: SpawnArgs;
  try {
    args = parseSpawnArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`${PROG}: ${e.message}\n`); return 1; }
    throw e;
  }
  if (args.vm) {
    // Loaded only for VMs: the container path never pays for it.
    // From the bundle (dist/bin/) the VM launcher is the compiled module under dist/src/.
    const vmModule = import.meta.url.endsWith('.mjs') ? '../src/launcher/vm/main.js' : '../launcher/vm/main.js';
    const { vmMain } = (await import(vmModule)) as { vmMain: (argv: string[]) => Promise<number> };
    return vmMain(argv);
  }
  if (args.help) { process.stdout.write(HELP); return 0; }
  const o = args.options!;
  const say = (m: string): void => { if (!o.quiet) process.stderr.write(`${m}\n`); };

  const { Supervisor } = await import('../launcher/supervisor.js');
  const { sdNotify } = await import('../launcher/notify.js');
  // Signals that arrive while starting: remember them, stop once running.
  let pendingStop = false;
  let sup: SupervisorT | undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!sup) { pendingStop = true; return; }
    if (stopping || sig === 'SIGQUIT') { say('Killing the container.'); sup.kill(); return; }
    stopping = true;
    sdNotify('STOPPING=1\nSTATUS=Stopping the container.');
    say(`Container ${o.name} is being stopped (press ^C again to kill it).`);
    void sup.stop(args.stopTimeoutMs);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGQUIT', onSignal);
  process.on('SIGHUP', () => {});

  say(`Spawning container ${o.name} on ${o.directory}.`);
  try {
    sup = await Supervisor.start(o, { log: (m) => say(m) });
  } catch (e) {
    if (e instanceof ContainerOptionError || e instanceof Error) { process.stderr.write(`${PROG}: ${e.message}\n`); return 1; }
    throw e;
  }
  say(`Container ${o.name} is running (PID 1 is ${sup.leader} on the host${sup.uidBase !== undefined ? `, UIDs ${sup.uidBase}…${sup.uidBase + 65535}` : ''}${sup.registered ? ', registered' : ''}).`);
  // Like nspawn: tell our own supervisor (berthd, systemd) that the machine is up, and who its leader is.
  sdNotify(`READY=1\nSTATUS=Container running.\nX_BERTH_LEADER_PID=${sup.leader}`);
  if (pendingStop) onSignal('SIGTERM');
  const info = await sup.wait();
  const how = info.reason === 'poweroff' ? 'powered off' : info.reason === 'reboot' ? 'rebooted'
    : info.reason === 'exit' ? `exited with status ${info.pid1Status}`
    : info.reason === 'killed' ? 'was killed after the stop timeout' : `was killed by ${info.pid1Signal}`;
  say(`Container ${o.name} ${how}.`);
  return info.code;
}

function isEntryPoint(): boolean {
  const a = process.argv[1];
  if (!a) return false;
  try { return import.meta.url === pathToFileURL(fs.realpathSync(a)).href; } catch { return false; }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`${PROG}: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}
