/**
 * The Varlink binding of io.berth.Launcher (one file per interface, named after it, as machine-api.ts is
 * io.systemd.Machine's): translates Start (with progress under `more`), Stop, Poweroff, Reboot and
 * ListConfigured into calls of berthd's launch service (launch/launch-service.ts), and its errors back.
 * Starting and stopping are for privileged callers.
 */
import { Replies, type Call, type Handlers } from '../varlink/call.js';
import { InvalidParameterError, PermissionDeniedError } from '../varlink/errors.js';
import {
  AlreadyRunning,
  BadConfiguration,
  NoSuchConfiguration,
  NotLaunched,
  StartFailed,
  Timeout,
  type IoBerthLauncherMethods,
  type StartResult,
} from '../generated/io.berth.Launcher.js';
import type { BerthContext } from './context.js';
import { ConfigError } from './launch/config.js';
import { LaunchError, type LaunchService } from './launch/launch-service.js';

function wire(err: unknown, name: string): never {
  if (err instanceof ConfigError) throw new BadConfiguration({ path: err.path, reason: err.reason, ...(err.line ? { line: err.line } : {}) });
  if (err instanceof LaunchError) {
    switch (err.kind) {
      case 'NoSuchConfiguration':
        throw new NoSuchConfiguration({ name });
      case 'AlreadyRunning':
        throw new AlreadyRunning();
      case 'NotLaunched':
        throw new NotLaunched();
      case 'Timeout':
        throw new Timeout();
      case 'StartFailed':
        throw new StartFailed({ log: err.details.log ?? [], ...(err.details.status != null ? { status: err.details.status } : {}) });
    }
  }
  throw err;
}

function seconds(v: number | null | undefined, name: string, fallback: number): number {
  if (v === undefined || v === null) return fallback * 1000;
  if (!Number.isInteger(v) || v <= 0 || v > 3600) throw new InvalidParameterError(name);
  return v * 1000;
}

export function launcherApi(ctx: BerthContext, launcher: LaunchService): Handlers<IoBerthLauncherMethods> {
  const privileged = (call: Call) => {
    if (!ctx.policy.isPrivileged(call.peer)) throw new PermissionDeniedError();
  };
  return {
    Start: ({ name, timeout }, call) => {
      privileged(call);
      const ms = seconds(timeout, 'timeout', 60);
      if (!call.more) {
        return launcher.start(name, ms, () => {}).then(
          (r) => ({ state: 'running' as const, supervisor: r.supervisor, leader: r.leader }),
          (err) => wire(err, name),
        );
      }
      // Progress: each state as it is reached, the last one 'running'.
      async function* progress(): AsyncGenerator<StartResult> {
        const states: StartResult[] = [];
        let wake: (() => void) | undefined;
        let outcome: { error?: unknown } | undefined;
        const notify = () => {
          const w = wake;
          wake = undefined;
          w?.();
        };
        launcher
          .start(name, ms, (state, supervisor, leader) => {
            states.push({ state, ...(supervisor ? { supervisor } : {}), ...(leader ? { leader } : {}) });
            notify();
          })
          .then(
            () => {
              outcome = {};
              notify();
            },
            (error: unknown) => {
              outcome = { error };
              notify();
            },
          );
        for (;;) {
          while (states.length) yield states.shift()!;
          if (outcome) break;
          await new Promise<void>((r) => (wake = r));
        }
        if (outcome.error !== undefined) wire(outcome.error, name);
      }
      return new Replies(progress());
    },
    Stop: async ({ name }, call) => {
      privileged(call);
      await launcher.stop(name, 3000).catch((err) => wire(err, name));
      return {};
    },
    Poweroff: async ({ name, timeout }, call) => {
      privileged(call);
      const ms = seconds(timeout, 'timeout', 30);
      await launcher.stop(name, ms).catch((err) => wire(err, name));
      return {};
    },
    Reboot: async ({ name }, call) => {
      privileged(call);
      try {
        await launcher.stop(name, 30_000);
        const r = await launcher.start(name, 60_000, () => {});
        return { supervisor: r.supervisor };
      } catch (err) {
        wire(err, name);
      }
    },
    ListConfigured: () => ({
      machines: launcher.list().map((m) => ({
        name: m.name,
        path: m.path,
        class: m.config?.class ?? 'invalid',
        ...(m.state ? { state: m.state } : {}),
        ...(m.supervisor ? { supervisor: m.supervisor } : {}),
      })),
    }),
  };
}
