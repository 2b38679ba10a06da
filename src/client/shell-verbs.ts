/**
 * `berthctl shell [USER@]NAME [PATH [ARGUMENTS…]]` and `berthctl login NAME`: a terminal inside a
 * machine, as `machinectl shell` and `machinectl login` give, but over Varlink alone. berthd answers
 * io.systemd.Machine.Open with the terminal's master as a file descriptor; this side bridges it to
 * the user's terminal until the program exits, or until ^] is pressed three times within a second.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { closeFd, closeFds, connectPath, receiveWithFds } from '../varlink/peer.js';
import { parseAddress } from '../varlink/address.js';
import { setWindowSize } from '../domain/libc.js';
import { CliError } from './varlink-verbs.js';
import { EXIT, refuseBadMachineNames } from './machine-verbs.js';
import { unreachable } from './unreachable.js';

export const SHELL_VERBS = new Set(['shell', 'login']);

export interface ShellVerbOptions {
  address: string;
  uid?: string;
  setenv: string[];
  quiet: boolean;
}

interface OpenReply {
  parameters?: { ptyFileDescriptor?: number; ptyPath?: string };
  error?: string;
}

/** Sends one call over a fresh connection and returns its reply with the descriptors that came along. */
async function callWithFds(socketPath: string, method: string, parameters: object): Promise<{ reply: OpenReply; fds: number[] }> {
  let fd: number;
  try {
    fd = connectPath(socketPath);
  } catch (e) {
    throw unreachable(socketPath, e);
  }
  try {
    fs.writeSync(fd, JSON.stringify({ method, parameters }) + '\0');
    let data = Buffer.alloc(0);
    const fds: number[] = [];
    while (!data.includes(0)) {
      const r = await receiveWithFds(fd);
      if (r.data.length === 0) throw new CliError(`${socketPath} closed the connection without an answer`);
      data = Buffer.concat([data, r.data]);
      fds.push(...r.fds);
    }
    return { reply: JSON.parse(data.subarray(0, data.indexOf(0)).toString('utf8')) as OpenReply, fds };
  } finally {
    closeFd(fd);
  }
}

/** Splits `berthctl shell` arguments: [USER@]NAME, then the program and its arguments. */
export function parseShellTarget(verb: string, args: string[], uid?: string): { name: string; user?: string; path?: string; args?: string[] } {
  const [target, path, ...rest] = args;
  if (!target) throw new CliError(`Usage: berthctl ${verb === 'login' ? 'login NAME' : 'shell [USER@]NAME [PATH [ARGUMENTS…]]'}`, EXIT.usage);
  if (verb === 'login') {
    if (args.length > 1) throw new CliError('Usage: berthctl login NAME', EXIT.usage);
    refuseBadMachineNames([target], 'lookup');
    return { name: target };
  }
  const at = target.indexOf('@');
  const user = at >= 0 ? target.slice(0, at) : uid;
  const name = at >= 0 ? target.slice(at + 1) || '.host' : target;
  refuseBadMachineNames([name], 'lookup');
  if (path !== undefined && !path.startsWith('/')) throw new CliError(`Program path must be absolute: ${path}`, EXIT.usage);
  return { name, ...(user ? { user } : {}), ...(path ? { path, args: [path, ...rest] } : {}) };
}

export async function shellVerb(verb: string, args: string[], o: ShellVerbOptions): Promise<number> {
  const t = parseShellTarget(verb, args, o.uid);
  const a = parseAddress(o.address);
  if (a.kind !== 'unix') throw new CliError(`${verb} needs a registry on a socket path (descriptors cannot be passed over ${o.address})`, EXIT.usage);
  const parameters = verb === 'login'
    ? { name: t.name, mode: 'login' }
    : { name: t.name, mode: 'shell', ...(t.user ? { user: t.user } : {}), ...(t.path ? { path: t.path, args: t.args } : {}), ...(o.setenv.length ? { environment: o.setenv } : {}) };
  const { reply, fds } = await callWithFds(a.path, 'io.systemd.Machine.Open', parameters);
  const index = reply.parameters?.ptyFileDescriptor;
  if (reply.error || index === undefined || fds[index] === undefined) {
    closeFds(fds);
    const what = reply.error ?? 'no terminal in the reply';
    throw new CliError(`Failed to open a ${verb} session in ${t.name}: ${what}`, what.endsWith('.NoSuchMachine') ? EXIT.noSuchMachine : EXIT.failure);
  }
  const master = fds[index]!;
  closeFds(fds.filter((fd) => fd !== master));
  return bridge(master, t.name, reply.parameters?.ptyPath ?? '', o.quiet);
}

/** Copies the user's terminal to the machine's and back until the program ends. */
function bridge(master: number, name: string, ptyPath: string, quiet: boolean): Promise<number> {
  const stdin = process.stdin;
  const interactive = stdin.isTTY === true;
  if (interactive && !quiet) process.stderr.write(`Connected to machine ${name} (${ptyPath}). Press ^] three times within 1s to exit session.\r\n`);
  const fit = () => {
    if (process.stdout.isTTY) setWindowSize(master, process.stdout.rows, process.stdout.columns);
  };
  fit();
  return new Promise((resolve) => {
    const output = new tty.ReadStream(master);
    const escapes: number[] = [];
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      if (interactive) stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onInput);
      process.stdout.off('resize', fit);
      output.destroy();
      if (interactive && !quiet) process.stderr.write(`\r\nConnection to machine ${name} terminated.\n`);
      resolve(code);
    };
    const onInput = (d: Buffer) => {
      if (interactive && d.length === 1 && d[0] === 0x1d) {
        const now = Date.now();
        escapes.push(now);
        while (escapes.length && now - escapes[0]! > 1000) escapes.shift();
        if (escapes.length >= 3) return finish(EXIT.ok);
      }
      try {
        fs.writeSync(master, d);
      } catch {
        finish(EXIT.ok);
      }
    };
    output.on('data', (d: Buffer) => process.stdout.write(d));
    // EIO on the master once the program and everything it started have closed the terminal.
    output.on('error', () => finish(EXIT.ok));
    output.on('end', () => finish(EXIT.ok));
    output.on('close', () => finish(EXIT.ok));
    if (interactive) stdin.setRawMode(true);
    stdin.on('data', onInput);
    stdin.resume();
    process.stdout.on('resize', fit);
  });
}
