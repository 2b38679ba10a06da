#!/usr/bin/env node
/**
 * berthctl: the command-line client of berthd.
 */
import { parseArgs } from 'node:util';
import { varlinkVerb, CliError } from './varlink-verbs.js';
import { machineVerb, EXIT } from './machine-verbs.js';
import { configuredMachineVerb as launchVerb, CONFIGURED_MACHINE_VERBS as LAUNCH_VERBS } from './configured-machine-verbs.js';
import { shellVerb, SHELL_VERBS } from './shell-verbs.js';
import { copyVerb, COPY_VERBS } from './copy-verbs.js';
import { instanceVerb, INSTANCE_VERBS } from './instance-verbs.js';
import { imageVerb, IMAGE_VERBS } from './image-verbs.js';
import type { JsonMode } from './output.js';
import { VERSION } from '../domain/version.js';
import { DEFAULT_RUNTIME_DIR, machineSocketPath } from '../domain/runtime-paths.js';
import { runRemote, withoutHost } from './remote.js';

const USAGE = `berthctl [OPTIONS…] COMMAND …

Machines:
  list                       List running machines (MACHINE CLASS SERVICE OS VERSION ADDRESSES)
  status NAME…               Show a machine's state
  show NAME…                 Show a machine's properties as KEY=VALUE
  terminate NAME…            Stop machines and all their processes
  poweroff NAME…             Shut machines down cleanly (through their control socket, else
                             SIGRTMIN+4 to the leader; configured machines: see below)
  reboot NAME…               Reboot machines (control socket, else SIGINT to the leader)
  pause NAME…                Freeze machines (through their control socket)
  resume NAME…               Thaw paused machines
  kill NAME…                 Send a signal (--kill-whom=leader|supervisor|all, --signal=SIG)
  register NAME --leader PID [--class container|vm] [--directory DIR]
                             Register a running process as a machine
  unregister NAME…           Drop machines from the registry without stopping them
  users [NAME]               List UID/GID ranges of user-namespaced machines
  uid-owner UID              Tell which machine a host UID belongs to
  watch [--since SEQ]        Follow registry changes
  shell [USER@]NAME [PATH [ARGUMENTS…]]
                             A shell (or PATH) in the machine on a new terminal
                             (--uid USER, -E VAR=VALUE; ^]^]^] leaves)
  login NAME                 The machine's login prompt on a new terminal
  copy-to NAME PATH [PATH]   Copy a host file or tree into a container (--force replaces)
  copy-from NAME PATH [PATH] Copy a file or tree out of a container (--force replaces)
  bind NAME PATH [PATH]      Bind mount a host path into a container (--read-only, --mkdir)
  cleanup [NAME…]            Remove what berth-spawn left of machines it no longer runs
                             (killed outright): links, scopes, mounts, run directories,
                             locks, leases (--dry-run: only print; --kill: also stop
                             processes left without their berth-spawn)

Images (in /var/lib/machines and the other image directories):
  list-images                List images (-a: also hidden ones and the host)
  image-status NAME…         Show an image's state
  show-image [NAME…]         Show an image's (or the pool's) properties (-p PROP, --value)
  clone NAME NEWNAME         Copy an image (--read-only)
  rename NAME NEWNAME        Rename an image
  read-only NAME [BOOL]      Mark an image read-only (or writable with false)
  remove NAME…               Remove images
  set-limit [NAME] BYTES     Limit an image's or the pool's size
  clean                      Remove hidden images (-a: all unused images)

Installing (in place of systemd-machined):
  install [--prefix DIR] [--dry-run] [--force]
                             Put berth on the PATH, its units and D-Bus files in place,
                             mask machined (recorded in /var/lib/berth/install.json)
  uninstall [--dry-run]      Remove all of it and give machined back as it was

Machines from configuration files (NAME.berth, see README):
  start NAME…                Start machines under their own supervisor
  stop NAME…                 Stop them now
  poweroff NAME…             Shut them down cleanly
  reboot NAME…               Shut them down cleanly and start them again
  configured                 List the configured machines

Generic Varlink client (like varlinkctl):
  varlink info ADDRESS
  varlink list-interfaces ADDRESS
  varlink list-methods ADDRESS [INTERFACE…]
  varlink introspect ADDRESS [INTERFACE…]
  varlink call ADDRESS METHOD [PARAMS] [--more] [--oneway] [--collect]
  varlink validate-idl [FILE]

Options:
  -H --host=[USER@]HOST[:PORT]  run the command on HOST over ssh (needs berthctl there)
  --runtime-dir DIR          berthd's runtime prefix (default /run)
  --address ADDRESS          talk to this registry address instead
  --json=pretty|short, -j    JSON output
  --no-legend                no header and footer in tables
  --no-pager                 accepted for compatibility (berthctl never pages)
  -a, --all                  include the host in list
  -q, --quiet                do not print the reply (varlink call)
  --timeout SECS             call timeout (varlink call; default 45)
  --graceful ERROR           treat that error as success (varlink call; repeatable)
  -h, --help, --version

Exit status: 0 success, 1 failure, 2 invalid usage, 4 no such machine.
`;

const OPTIONS = {
    'runtime-dir': { type: 'string' },
    address: { type: 'string' },
    host: { type: 'string', short: 'H' },
    json: { type: 'string' },
    j: { type: 'boolean', short: 'j' },
    'no-legend': { type: 'boolean' },
    'no-pager': { type: 'boolean' },
    all: { type: 'boolean', short: 'a' },
    'kill-whom': { type: 'string' },
    signal: { type: 'string', short: 's' },
    leader: { type: 'string' },
    class: { type: 'string' },
    directory: { type: 'string', short: 'D' },
    service: { type: 'string' },
    since: { type: 'string' },
    more: { type: 'boolean' },
    oneway: { type: 'boolean' },
    collect: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    timeout: { type: 'string' },
    kill: { type: 'boolean' },
    graceful: { type: 'string', multiple: true },
    uid: { type: 'string' },
  setenv: { type: 'string', short: 'E', multiple: true },
  'dry-run': { type: 'boolean' },
    force: { type: 'boolean' },
    'read-only': { type: 'boolean' },
    mkdir: { type: 'boolean' },
    property: { type: 'string', short: 'p', multiple: true },
    value: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
} as const;

/**
 * `shell` takes a program and its own arguments after the machine name, options included
 * (`berthctl shell web /bin/sh -c 'echo hi'`): those must not reach parseArgs. Returns the arguments
 * for parseArgs and the program's, cut after the first positional following the verb.
 */
function splitProgram(argv: string[]): { own: string[]; program: string[] } {
  const takesValue = new Set<string>();
  for (const [long, o] of Object.entries(OPTIONS)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${long}`);
    if ('short' in o && o.short) takesValue.add(`-${o.short}`);
  }
  const positionals: number[] = [];
  for (let i = 0; i < argv.length && positionals.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('-') && a !== '-') {
      if (takesValue.has(a)) i++;
      continue;
    }
    positionals.push(i);
  }
  if (positionals.length < 2 || argv[positionals[0]!] !== 'shell') return { own: argv, program: [] };
  const cut = positionals[1]! + 1;
  return { own: argv.slice(0, cut), program: argv.slice(cut) };
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'install' || argv[0] === 'uninstall') {
    const { installVerb } = await import('./install-verb.js');
    return installVerb(argv[0], argv.slice(1));
  }
  const { own, program } = splitProgram(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: OPTIONS,
    });
  } catch (e) {
    process.stderr.write(`berthctl: ${(e as Error).message}\n`);
    return EXIT.usage;
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (v.version) {
    process.stdout.write(`berthctl ${VERSION}\n`);
    return EXIT.ok;
  }
  let json: JsonMode | undefined;
  if (v.json !== undefined) {
    if (v.json !== 'pretty' && v.json !== 'short') {
      process.stderr.write(`berthctl: --json= takes pretty or short\n`);
      return EXIT.usage;
    }
    json = v.json;
  } else if (v.j) json = process.stdout.isTTY ? 'pretty' : 'short';
  const [verb, ...rest] = parsed.positionals;
  if (!verb) {
    process.stderr.write(USAGE);
    return EXIT.usage;
  }
  if (v.host !== undefined) return runRemote(v.host, withoutHost(argv), { tty: SHELL_VERBS.has(verb) && process.stdin.isTTY === true });
  if (verb === 'varlink') {
    const [sub, ...args] = rest;
    if (!sub) throw new CliError('Usage: berthctl varlink info|list-interfaces|list-methods|introspect|call|validate-idl …', EXIT.usage);
    let timeoutMs: number | undefined;
    if (v.timeout !== undefined) {
      timeoutMs = v.timeout === '' || v.timeout === 'infinity' ? 0 : Number(v.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new CliError(`Invalid --timeout '${v.timeout}'.`, EXIT.usage);
    }
    return varlinkVerb(sub, args, {
      ...(json ? { json } : {}),
      more: v.more ?? false,
      oneway: v.oneway ?? false,
      collect: v.collect ?? false,
      quiet: v.quiet ?? false,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      graceful: v.graceful ?? [],
    });
  }
  const runtime = v['runtime-dir'] ?? process.env.BERTH_RUNTIME_DIR ?? DEFAULT_RUNTIME_DIR;
  const address = v.address ?? `unix:${machineSocketPath(runtime)}`;
  if (verb === 'cleanup') {
    const { cleanupVerb } = await import('./cleanup-verb.js');
    return cleanupVerb(rest, { runtimeDir: runtime, ...(json ? { json } : {}), dryRun: v['dry-run'] ?? false, kill: v.kill ?? false });
  }
  if (SHELL_VERBS.has(verb)) {
    return shellVerb(verb, [...rest, ...program], { address, ...(v.uid !== undefined ? { uid: v.uid } : {}), setenv: v.setenv ?? [], quiet: v.quiet ?? false });
  }
  if (COPY_VERBS.has(verb)) {
    return copyVerb(verb, rest, { address, force: v.force ?? false, readOnly: v['read-only'] ?? false, mkdir: v.mkdir ?? false });
  }
  if (INSTANCE_VERBS.has(verb)) {
    return instanceVerb(verb, rest, { address, quiet: v.quiet ?? false });
  }
  if (IMAGE_VERBS.has(verb)) {
    return imageVerb(verb, rest, {
      address, ...(json ? { json } : {}), legend: !v['no-legend'], all: v.all ?? false,
      properties: v.property ?? [], value: v.value ?? false, readOnly: v['read-only'] ?? false,
    });
  }
  if (LAUNCH_VERBS.has(verb)) {
    return launchVerb(verb, rest, { address, ...(json ? { json } : {}), legend: !v['no-legend'], quiet: v.quiet ?? false });
  }
  return machineVerb(verb, rest, {
    address,
    ...(json ? { json } : {}),
    legend: !v['no-legend'],
    all: v.all ?? false,
    ...(v['kill-whom'] !== undefined ? { killWhom: v['kill-whom'] } : {}),
    ...(v.signal !== undefined ? { signal: v.signal } : {}),
    ...(v.leader !== undefined ? { leader: v.leader } : {}),
    ...(v.class !== undefined ? { class: v.class } : {}),
    ...(v.directory !== undefined ? { directory: v.directory } : {}),
    ...(v.service !== undefined ? { service: v.service } : {}),
    ...(v.since !== undefined ? { since: v.since } : {}),
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof CliError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(e.exitCode);
    }
    process.stderr.write(`berthctl: ${(e as Error).stack ?? e}\n`);
    process.exit(EXIT.failure);
  },
);
