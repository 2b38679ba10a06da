// The processes a VM needs beside qemu, each started inside the machine's scope and killed with it: virtiofsd
// for --directory and every --bind, swtpm for the TPM, systemd-journal-remote for --forward-journal. Each
// start registers its undo on the launch's Teardown; qemu starts only once their sockets exist.

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Teardown } from '../teardown.js';
import { findExecutable } from './host.js';
import type { HostPlan } from './plan.js';
import type { VmOptions } from './options.js';
import type { VirtiofsShare } from './qemu.js';
import { VmLaunchError } from './running.js';
import type { VmScope } from './scope.js';
import { credentialString } from './smbios.js';

/** Starts processes in the scope; each dies with the launcher, even when it is killed outright. */
export class ScopeProcesses {
  private readonly started: ResultPromise[] = [];
  private readonly setpriv: string | undefined;

  constructor(
    private readonly scope: VmScope,
    private readonly t: Teardown,
    private readonly stderr: (chunk: Buffer) => void,
    env: NodeJS.ProcessEnv,
  ) {
    // PR_SET_PDEATHSIG via setpriv: qemu and helpers get SIGTERM when the launcher dies
    this.setpriv = findExecutable('setpriv', env);
  }

  /** The argv that runs `argv` inside the scope, dying with the launcher. */
  wrap(argv: string[]): string[] {
    return this.scope.wrap(this.setpriv ? [this.setpriv, '--pdeathsig', 'SIGTERM', '--', ...argv] : argv);
  }

  /** Starts a helper (stdout ignored, stderr passed on), killed by the teardown. */
  spawn(argv: string[]): ResultPromise {
    const w = this.wrap(argv);
    const p = execa(w[0]!, w.slice(1), { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: false });
    p.stderr?.on('data', (d: Buffer) => this.stderr(d));
    this.started.push(p);
    this.t.add(`kill ${argv[0]}`, () => void p.kill('SIGKILL'));
    return p;
  }

  /** Waits for the helpers' sockets to appear; fails early if a helper exits. */
  async waitForSockets(paths: readonly string[], timeoutMs: number): Promise<void> {
    await Promise.all(paths.map((p) => this.waitForPath(p, timeoutMs)));
  }

  private async waitForPath(path: string, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    let dead = false;
    for (const h of this.started) void h.then(() => (dead = true));
    while (!existsSync(path)) {
      if (dead) throw new VmLaunchError(`a helper exited before creating ${path}`);
      if (Date.now() > end) throw new VmLaunchError(`${path} did not appear within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export interface BindTag {
  tag: string;
  target: string;
  readOnly: boolean;
}

/** One virtiofsd per share: the root directory (tag "root") and each --bind (tags mnt0, mnt1, …). */
export function startVirtiofs(o: VmOptions, host: HostPlan, runDir: string, procs: ScopeProcesses): { virtiofs: VirtiofsShare[]; bindTags: BindTag[] } {
  const virtiofs: VirtiofsShare[] = [];
  const bindTags: BindTag[] = [];
  const shares: { source: string; tag: string; readOnly: boolean }[] = [];
  if (o.directory) shares.push({ source: resolvePath(o.directory), tag: 'root', readOnly: false });
  o.binds.forEach((b, i) => {
    shares.push({ source: b.source, tag: `mnt${i}`, readOnly: b.readOnly });
    bindTags.push({ tag: `mnt${i}`, target: b.target, readOnly: b.readOnly });
  });
  for (const sh of shares) {
    const sock = join(runDir, `fs-${sh.tag}.sock`);
    const args = [`--socket-path=${sock}`, '-o', `source=${sh.source}`, '-o', 'cache=auto'];
    if (o.privateUsers) {
      const { shift, range } = o.privateUsers;
      args.push(`--translate-uid=map:0:${shift}:${range}`, `--translate-gid=map:0:${shift}:${range}`);
    }
    procs.spawn([host.virtiofsd!, ...args]);
    virtiofs.push({ tag: sh.tag, socket: sock });
  }
  return { virtiofs, bindTags };
}

/** A software TPM whose state lives in the run directory (manufactured by swtpm_setup where it exists). */
export async function startTpm(host: HostPlan, runDir: string, procs: ScopeProcesses): Promise<string | undefined> {
  if (!host.swtpm) return undefined;
  const state = join(runDir, 'tpm');
  mkdirSync(state, { mode: 0o700 });
  if (host.swtpm.setup) await execa(host.swtpm.setup, ['--tpm-state', state, '--tpm2', '--pcr-banks', 'sha256', '--not-overwrite'], { stdin: 'ignore' });
  const tpmSocket = join(runDir, 'tpm.sock');
  procs.spawn([host.swtpm.swtpm, 'socket', '--tpm2', '--tpmstate', `dir=${state}`, '--ctrl', `type=unixio,path=${tpmSocket}`]);
  return tpmSocket;
}

/** The guest's journal over vsock into --forward-journal's file; adds the credential that tells the guest where. */
export function forwardJournal(o: VmOptions, host: HostPlan, vsockCid: number | undefined, procs: ScopeProcesses, smbios: string[]): void {
  if (!host.journalRemote || vsockCid === undefined) return;
  const port = 0x20000 + (vsockCid % 0xefff);
  procs.spawn([host.journalRemote, `--output=${resolvePath(o.forwardJournal!)}`, `--listen-raw=vsock:2:${port}`]);
  smbios.push(credentialString({ id: 'journal.forward_to_socket', value: Buffer.from(`vsock-stream:2:${port}`) }));
}
