/**
 * A private dbus-daemon for tests: a session-like bus on a socket in a temp dir whose policy allows
 * everything, started with --nofork --print-address and stopped again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { within } from '../../helpers/wait.js';

export interface PrivateBus {
  address: string;
  socketPath: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startPrivateBus(): Promise<PrivateBus> {
  const dir = tempDir('dbus', { world: true });
  const socketPath = join(dir.path, 'bus');
  const config = join(dir.path, 'bus.conf');
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`,
  );
  const daemon = await runDbusDaemon(config);
  return {
    address: daemon.address,
    socketPath,
    dir: dir.path,
    async stop() {
      await daemon.stop();
      dir.remove();
    },
  };
}

/** A dbus-daemon running `config` in the foreground: its address once it printed it, and how to stop it. */
export async function runDbusDaemon(config: string): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
  const child: ChildProcess = spawn('dbus-daemon', [`--config-file=${config}`, '--print-address', '--nofork'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await within(
    new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!.trim());
      });
      child.once('exit', (code) => reject(new Error(`dbus-daemon exited with ${code}`)));
    }),
    10_000,
    'dbus-daemon to print its address',
  );
  return {
    address,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGCONT'); // a test may have stopped it to stall the bus
      child.kill('SIGTERM');
      await within(gone, 5000, 'dbus-daemon to exit');
    },
  };
}
