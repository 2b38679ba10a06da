/**
 * The Varlink core: org.varlink.service.GetInfo on one connection and 16 pipelined, and the first call to
 * a socket-activated berthd (systemd-socket-activate execs it on the first connection).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext } from '../lib/context.js';
import { byPeer, interleaved, latencies } from '../lib/loadgen.js';
import { micros, millis } from '../lib/report.js';
import { BERTHD, BERTHD_NODE_OPTIONS, serverPid } from '../lib/servers.js';
import { hostileRss } from './hostile-rss.js';
import { errorText, median, percentile, runtimeDir } from '../lib/util.js';

export const VARLINK_SCENARIOS = ['varlink.getinfo.1conn', 'varlink.getinfo.pipe16', 'varlink.activation', 'varlink.hostile16mib', 'varlink.hostile4x16mib.rss'];

const GETINFO = 'org.varlink.service.GetInfo';

export async function varlinkScenarios(ctx: BenchContext): Promise<void> {
  const r = ctx.report;
  const run = async (name: string, body: () => Promise<void>) => {
    if (!ctx.selected(name)) return;
    try {
      await body();
    } catch (e) {
      r.fail(name, errorText(e));
    }
  };
  const base = { method: GETINFO, params: {}, duration: ctx.duration, warmup: ctx.warmup, scratch: ctx.scratch };

  await run('varlink.getinfo.1conn', async () => {
    const [b, peers] = [await ctx.berthd(), await ctx.peers()];
    const [rb, ...rp] = await interleaved(ctx.rounds, [b, ...peers].map((s) => ({ ...base, socket: s.socket, pid: serverPid(s) })));
    r.versus('varlink.getinfo.1conn', rb!.rate, byPeer(peers, rp, (x) => x.rate), 1.0, latencies(rb!, peers, rp, micros));
  });

  await run('varlink.getinfo.pipe16', async () => {
    const [b, peers] = [await ctx.berthd(), await ctx.peers()];
    const [rb, ...rp] = await interleaved(ctx.rounds, [b, ...peers].map((s) => ({ ...base, socket: s.socket, pipeline: 16, pid: serverPid(s) })));
    r.absolute('varlink.getinfo.pipe16', {
      berth: rb!.rate,
      peers: byPeer(peers, rp, (x) => x.rate),
      format: (v) => `${(v / 1000).toFixed(1)}k calls/s`,
      target: 100_000,
      atMost: false,
      note: latencies(rb!, peers, rp, micros),
    });
  });

  await run('varlink.hostile16mib', async () => {
    const [b, peers] = [await ctx.berthd(), await ctx.peers()];
    const hostile = hostileMessage();
    const rb = await bystanderWorstCase(b.socket, hostile);
    const rp: { worst: number; answered: number }[] = [];
    for (const p of peers) rp.push(await bystanderWorstCase(p.socket, hostile));
    r.absolute('varlink.hostile16mib', {
      berth: rb.worst,
      peers: byPeer(peers, rp, (x) => x.worst),
      format: millis,
      target: 50,
      atMost: true,
      unitText: '50 ms (other clients not held up)',
      note: `a bystander's worst List round trip while another client's 16 MiB of nested arrays is parsed; answered in ${millis(rb.answered)}${peers.map((p, i) => ` vs ${p.label} ${millis(rp[i]!.answered)}`).join('')}`,
    });
  });

  await run('varlink.hostile4x16mib.rss', () => hostileRss(ctx));

  await run('varlink.activation', async () => {
    const n = ctx.quick ? 5 : 20;
    const base = ctx.options.baseline;
    const samples: number[] = [];
    const baseSamples: number[] = [];
    // Alternating with the baseline's bundle, when there is one, so both see the same load.
    for (let i = 0; i < n; i++) {
      samples.push(await activateOnce(BERTHD));
      if (base) baseSamples.push(await activateOnce(base.bundle));
    }
    r.absolute('varlink.activation', {
      berth: median(samples),
      ...(base ? { peers: { base: median(baseSamples) } } : {}),
      format: millis,
      target: 60,
      atMost: true,
      unitText: '60 ms p50',
      note: `p50 of ${n}; min ${millis(Math.min(...samples))}, p90 ${millis(percentile(samples, 0.9))}, max ${millis(Math.max(...samples))}`,
    });
  });
}

/**
 * A message of 16 MiB that costs a parser as much as any: arrays nested 2,000 deep (sd-json's limit is
 * 2,048), repeated. It is answered with InvalidParameter by both daemons.
 */
function hostileMessage(): string {
  const unit = `${'['.repeat(2000)}${']'.repeat(2000)}`;
  const count = Math.floor((16 * 1024 * 1024 - 200) / (unit.length + 1));
  return `{"method":"io.systemd.Machine.List","parameters":{"x":[${Array(count).fill(unit).join(',')}]}}\0`;
}

/**
 * Sends `hostile` on one connection while a bystander on another asks List .host every 5 ms; returns
 * the bystander's worst round trip from just before the hostile message is sent until it is answered.
 */
async function bystanderWorstCase(socket: string, hostile: string): Promise<{ worst: number; answered: number }> {
  const open = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const c = net.connect(socket, () => resolve(c));
      c.once('error', reject);
    });
  const [attacker, bystander] = [await open(), await open()];
  let worst = 0;
  let done = false;
  const pinging = (async () => {
    let buf = '';
    while (!done) {
      const t = performance.now();
      await new Promise<void>((resolve) => {
        const on = (d: Buffer) => {
          buf += d.toString();
          if (!buf.includes('\0')) return;
          buf = '';
          bystander.off('data', on);
          resolve();
        };
        bystander.on('data', on);
        bystander.write('{"method":"io.systemd.Machine.List","parameters":{"name":".host"}}\0');
      });
      worst = Math.max(worst, performance.now() - t);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let got = '';
    attacker.on('data', (d) => {
      got += d.toString();
      if (got.includes('\0')) resolve();
    });
    attacker.on('close', () => resolve());
    attacker.write(hostile);
  });
  const answered = performance.now() - t0;
  // One more round for the bystander, in case its last call was the one held up.
  await new Promise((r) => setTimeout(r, 50));
  done = true;
  await pinging;
  attacker.destroy();
  bystander.destroy();
  return { worst, answered };
}

/**
 * Starts `systemd-socket-activate -l SOCKET --fdname=varlink berthd …` in a fresh runtime directory, waits
 * until it listens, then connects, sends GetInfo and returns the milliseconds from connect() to the reply.
 */
async function activateOnce(bundle: string): Promise<number> {
  const dir = runtimeDir('bn-activate-');
  const socket = path.join(dir, 'systemd/machine/io.systemd.Machine');
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  const child = spawn(
    'systemd-socket-activate',
    ['-l', socket, '--fdname=varlink', process.execPath, ...BERTHD_NODE_OPTIONS, bundle, '--runtime-dir', dir, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    // The activator reports "Listening on …" once the socket is bound and listening.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`systemd-socket-activate did not listen: ${stderr.trim()}`)), 10_000);
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/Listening on/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`systemd-socket-activate exited (${code}): ${stderr.trim()}`));
      });
    });
    return await new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const s = net.connect(socket);
      let got = '';
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no reply within 10 s of connect; berthd: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      }, 10_000);
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\0')) {
          const ms = performance.now() - t0;
          clearTimeout(timer);
          s.destroy();
          if (!got.includes('"parameters"')) reject(new Error(`unexpected first reply: ${got.slice(0, 200)}`));
          else resolve(ms);
        }
      });
      s.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.write('{"method":"org.varlink.service.GetInfo"}\0');
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
