/**
 * varlink.hostile4x16mib.rss: four clients at once each send one message just under the 16 MiB limit
 * (a Register whose ifIndices holds 8.4 million integers); the server's peak resident memory meanwhile,
 * berth against each machined (their pids from reference-tools.sh), and berth's memory at rest after.
 */
import net from 'node:net';
import type { BenchContext } from '../lib/context.js';
import { megabytes } from '../lib/report.js';
import { Berthd, machinedPid } from '../lib/servers.js';
import { Machined262 } from '../lib/machined262.js';
import { BaselineBerthd } from '../lib/baseline.js';
import { rssBytes, sleep } from '../lib/util.js';

function bigMessage(): Buffer {
  const value = '[' + '1,'.repeat(8_388_000) + '1]';
  return Buffer.from(`{"method":"io.systemd.Machine.Register","parameters":{"ifIndices":${value}}}\0`);
}

/** Sends `msg` on `clients` connections at once; samples `pid`'s RSS every 2 ms until all are answered. */
async function peakWhile(socket: string, pid: number, msg: Buffer, clients = 4): Promise<number> {
  let peak = rssBytes(pid);
  let done = false;
  const sampling = (async () => {
    while (!done) {
      try {
        peak = Math.max(peak, rssBytes(pid));
      } catch {
        return;
      }
      await sleep(2);
    }
  })();
  await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<void>((resolve) => {
          const c = net.connect(socket);
          const timer = setTimeout(() => c.destroy(), 60_000);
          const end = () => {
            clearTimeout(timer);
            c.destroy();
            resolve();
          };
          c.on('data', (d: Buffer) => {
            if (d.includes(0)) end();
          });
          c.on('error', end);
          c.on('close', end);
          c.write(msg);
        }),
    ),
  );
  done = true;
  await sampling;
  return peak;
}

export async function hostileRss(ctx: BenchContext): Promise<void> {
  const msg = bigMessage();
  // A berthd of its own, so that its peak is this test's and not an earlier scenario's.
  const b = await Berthd.start();
  try {
    const peers = await ctx.peers();
    const berthPeak = await peakWhile(b.socket, b.pid, msg);
    const figures: Record<string, number | undefined> = {};
    for (const p of peers) {
      const pid = p instanceof Machined262 ? p.pid() : p instanceof BaselineBerthd ? p.berthd.pid : machinedPid();
      figures[p.label] = pid === undefined ? undefined : await peakWhile(p.socket, pid, msg);
    }
    // The parse worker leaves after 5 idle seconds, and V8 gives its heap back a little later.
    await sleep(ctx.quick ? 8000 : 12_000);
    const rest = rssBytes(b.pid);
    ctx.report.versus(
      'varlink.hostile4x16mib.rss',
      berthPeak,
      figures,
      1.0,
      `peak RSS while 4 clients each send a 16 MiB Register at once; berth at rest after: ${megabytes(rest)} (target < 60 MB)${rest >= 60 * 1024 * 1024 ? ' MISS' : ''}`,
      megabytes,
      true,
    );
  } finally {
    await b.stop();
  }
}
