/**
 * io.systemd.MachineInstance for one machine berth-spawn runs, on a socket in the machine's run directory
 * that berth-spawn registers as the machine's controlAddress (as systemd-vmspawn 262 does). The methods
 * map onto per-kind actions (instance-container.ts, instance-vm.ts); this module only serves them: the
 * caller check, the event stream, and the errors for what a kind cannot do.
 */
import path from 'node:path';
import { VarlinkServer } from '../varlink/server.js';
import { Replies, type Call } from '../varlink/call.js';
import { PermissionDeniedError } from '../varlink/errors.js';
import { IoSystemdMachineInstance, NotSupported, type SubscribeEventsResult } from '../generated/io.systemd.MachineInstance.js';
import { VERSION } from '../domain/version.js';

/** What happened to the machine: a name (the QMP event names, for containers too) and its payload. */
export interface InstanceEvent {
  event: string;
  data?: Record<string, unknown>;
}

/** What each kind of machine does for the methods. An action that cannot be done throws (NotSupported etc.). */
export interface InstanceActions {
  terminate(): Promise<void>;
  powerOff(): Promise<void>;
  reboot(): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  describe(): Promise<{ running: boolean; status: string }>;
}

/** The file name of the control socket inside the run directory (vmspawn 262 names its socket so too). */
export const CONTROL_SOCKET = 'io.systemd.MachineInstance';

/** Longest path a Unix socket address holds (sun_path minus its terminating NUL). */
const MAX_SOCKET_PATH = 107;

/** The control socket of a machine whose run directory is `runDir`, or undefined when its path is too long to bind. */
export function controlSocketPath(runDir: string): string | undefined {
  const p = path.join(runDir, CONTROL_SOCKET);
  return Buffer.byteLength(p) <= MAX_SOCKET_PATH ? p : undefined;
}

/** Only root and the user berth-spawn runs as may control the machine (the socket is 0600 as well). */
function checkCaller(call: Call): void {
  const uid = call.peer.uid;
  if (uid === 0 || uid === process.getuid?.()) return;
  throw new PermissionDeniedError();
}

export class InstanceServer {
  private readonly subscribers = new Set<(e: InstanceEvent) => void>();
  private readonly wakers = new Set<() => void>();
  private closed = false;

  private constructor(readonly socketPath: string, private readonly server: VarlinkServer) {}

  /** Listens on `socketPath` and serves the actions there until close(). */
  static async start(socketPath: string, actions: InstanceActions): Promise<InstanceServer> {
    const server = new VarlinkServer({ vendor: 'berth', product: 'berth-spawn', version: VERSION, url: 'https://github.com/berth' });
    const s = new InstanceServer(socketPath, server);
    const act = (f: () => Promise<void>) => async (_p: unknown, call: Call): Promise<Record<string, never>> => {
      checkCaller(call);
      await f();
      return {};
    };
    const noStorage = (_p: unknown, call: Call): never => {
      checkCaller(call);
      throw new NotSupported();
    };
    server.implement(IoSystemdMachineInstance, {
      Terminate: act(() => actions.terminate()),
      PowerOff: act(() => actions.powerOff()),
      Reboot: act(() => actions.reboot()),
      Pause: act(() => actions.pause()),
      Resume: act(() => actions.resume()),
      Describe: async (_p, call) => {
        checkCaller(call);
        return actions.describe();
      },
      SubscribeEvents: ({ filter }, call) => {
        checkCaller(call);
        return new Replies(s.stream(filter ?? undefined, call.signal), undefined, true);
      },
      AddStorage: noStorage,
      RemoveStorage: noStorage,
      ReplaceStorage: noStorage,
    });
    await server.listen(`unix:${socketPath}`, { mode: 0o600 });
    return s;
  }

  /** Tells every subscriber (whose filter lets it through) what happened. */
  publish(e: InstanceEvent): void {
    for (const f of this.subscribers) f(e);
  }

  /** One subscription: events as they come, until the connection or the server closes. */
  private async *stream(filter: string[] | undefined, signal: AbortSignal): AsyncGenerator<SubscribeEventsResult> {
    const queue: InstanceEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (e: InstanceEvent): void => {
      if (filter && !filter.includes(e.event)) return;
      queue.push(e);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    this.subscribers.add(push);
    this.wakers.add(onAbort);
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        while (queue.length) {
          const e = queue.shift()!;
          yield { event: e.event, ...(e.data ? { data: e.data } : {}) };
        }
        if (signal.aborted || this.closed) return;
        await new Promise<void>((r) => { wake = r; });
        wake = undefined;
      }
    } finally {
      this.subscribers.delete(push);
      this.wakers.delete(onAbort);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Ends every subscription and stops listening (the socket file goes too). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Each stream sends what it still holds and ends; give the replies a moment to be written.
    for (const w of this.wakers) w();
    await new Promise((r) => setTimeout(r, 20));
    await this.server.close();
  }
}
