// `berthctl -H [USER@]HOST[:PORT] VERB …`: the verb runs on HOST, as machinectl -H runs its verbs against the
// remote machined.
//
// machinectl tunnels D-Bus: `ssh -xT HOST systemd-stdio-bridge`, and speaks the bus protocol over the pipe.
// berthctl runs the remote berthctl instead: `ssh -xT [-p PORT] [USER@]HOST berthctl ARGS…`. Reasons: every verb
// then works remotely exactly as locally (file-descriptor passing for `shell`/`login` and reading the remote
// /run for `cleanup` cannot cross a byte pipe, and a Varlink bridge would also need the remote to have one);
// output, JSON modes and exit statuses come from the same code; the remote needs berthctl, as machinectl's
// needs systemd-stdio-bridge. `shell` and `login` get a terminal (`ssh -t`) when ours is one.
//
// BERTH_SSH replaces the ssh command (words split at blanks, like a short GIT_SSH_COMMAND: "ssh -F cfg");
// BERTH_REMOTE_BERTHCTL the remote command (default `berthctl`), as a shell command line.
import { spawn } from 'node:child_process';
import { CliError } from './varlink-verbs.js';

/** ssh's exit status when it could not connect or log in (the remote command's status otherwise). */
const SSH_FAILED = 255;

/** One argument for the remote shell, single-quoted unless it is plainly safe. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** `[USER@]HOST[:PORT]` as ssh arguments: `[-p PORT] [USER@]HOST`. */
export function sshTarget(target: string): string[] {
  const m = /^((?:[^@\s]+@)?)(\[[^\]]+\]|[^:\s@]+)(?::(\d+))?$/.exec(target);
  if (!m || m[2]!.startsWith('-')) throw new CliError(`Invalid host '${target}': expected [USER@]HOST[:PORT].`, 2);
  const host = m[2]!.replace(/^\[(.*)\]$/, '$1');
  return [...(m[3] ? ['-p', m[3]] : []), `${m[1]}${host}`];
}

/**
 * The command line without its first `-H`/`--host` and that option's value (a program's own `-H` after it,
 * for `shell`, and everything after `--` pass unchanged).
 */
export function withoutHost(argv: string[]): string[] {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '-H' || a === '--host') return [...argv.slice(0, i), ...argv.slice(i + 2)];
    if (a.startsWith('--host=') || /^-H./.test(a)) return [...argv.slice(0, i), ...argv.slice(i + 1)];
  }
  return argv;
}

/** Runs berthctl with `args` on `target` over ssh; resolves to the remote exit status. */
export function runRemote(target: string, args: string[], { tty = false }: { tty?: boolean } = {}): Promise<number> {
  const ssh = (process.env.BERTH_SSH || 'ssh').split(/\s+/).filter(Boolean);
  const remote = process.env.BERTH_REMOTE_BERTHCTL || 'berthctl';
  const argv = [...ssh.slice(1), '-x', tty ? '-t' : '-T', ...sshTarget(target), [remote, ...args.map(shellQuote)].join(' ')];
  return new Promise((resolve, reject) => {
    const child = spawn(ssh[0]!, argv, { stdio: 'inherit' });
    child.on('error', (e) => reject(new CliError(`Cannot run ${ssh[0]}: ${e.message}`)));
    child.on('exit', (code, signal) => {
      if (code === SSH_FAILED) reject(new CliError(`Failed to reach ${target} over ssh (see the message above).`));
      else resolve(code ?? (signal ? 1 : 0));
    });
  });
}
