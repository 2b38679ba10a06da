// Bundles the three programs into single files under dist/bin/. A socket-activated berthd answers
// its first call ~50 ms sooner from one file than from ~90 modules (measured p50 88 ms vs 142 ms on
// this machine kind), and berth-spawn's path to READY gains the same. koffi (native) and execa
// (loaded lazily, off the hot paths) stay in node_modules.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { BERTHD_NODE_OPTIONS } from '../dist/src/server/node-options.js';
import { lazyStart, liteAssert } from './bundle-plugins.mjs';

await build({
  entryPoints: {
    berthd: 'dist/src/server/main.js',
    berthctl: 'dist/src/client/berthctl.js',
    'berth-spawn': 'dist/src/client/berth-spawn.js',
    // berthd starts it as a worker thread for large messages (src/varlink/offload.ts).
    'berthd-parse-worker': 'dist/src/server/parse-worker.js',
    // berthd runs it as a child process for each CopyTo/CopyFrom (src/server/machine-fs.ts).
    'berthd-copy-worker': 'dist/src/server/copy-worker.js',
  },
  outdir: 'dist/bin',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi', 'execa'],
  plugins: [liteAssert],
  // CommonJS dependencies (pino) call require(); give the ES module bundle one.
  banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
  logLevel: 'warning',
});

// berthd as it starts in production (dist/bin/berthd.cjs, src/server/berthd-start.cjs): the same program as a
// CommonJS bundle, which Node 20 can run from a V8 code cache (no ES module loader, no compile of 1 MB
// of source). import.meta.url names berthd.mjs beside it, so every path found from it (workers,
// berth-spawn, koffi) is the same as from the ES module bundle.
await build({
  entryPoints: { 'berthd-code': 'dist/src/server/main.js' },
  outdir: 'dist/bin',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['koffi', 'execa'],
  plugins: [liteAssert, lazyStart],
  define: { 'import.meta.url': '__berthModuleUrl' },
  banner: { js: "const __berthModuleUrl = require('node:url').pathToFileURL(require('node:path').join(__dirname, 'berthd.mjs')).href;" },
  logLevel: 'warning',
});
fs.copyFileSync('src/server/berthd-start.cjs', 'dist/bin/berthd.cjs');
fs.chmodSync('dist/bin/berthd.cjs', 0o755);
await writeCodeCache();

/**
 * Runs berthd.cjs once in a scratch runtime directory with BERTH_WRITE_CODE_CACHE=1, asks it what a
 * first caller asks (GetInfo, a List), stops it; on exit it writes the code cache of what it ran.
 * Without a cache berthd still works, only slower to its first reply, so a failure here only warns.
 */
async function writeCodeCache() {
  const cache = 'dist/bin/berthd-code.cjs.v8cache';
  fs.rmSync(cache, { force: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cache-'));
  const child = spawn(process.execPath, [...BERTHD_NODE_OPTIONS, 'dist/bin/berthd.cjs', '--runtime-dir', dir, '--dbus=no', '--log-level', 'warn', '--idle-exit', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, BERTH_WRITE_CODE_CACHE: '1', LISTEN_FDS: '', LISTEN_PID: '' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const socket = path.join(dir, 'systemd/machine/io.systemd.Machine');
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(socket)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`berthd did not listen: ${stderr.trim().slice(-300)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((resolve, reject) => {
      const s = net.connect(socket);
      const calls = ['{"method":"org.varlink.service.GetInfo"}', '{"method":"io.systemd.Machine.List","parameters":{"name":"none"}}'];
      let got = 0;
      s.on('error', reject);
      s.on('data', (d) => {
        got += d.toString('latin1').split('\0').length - 1;
        if (got >= calls.length) {
          s.destroy();
          resolve();
        }
      });
      s.write(calls.map((c) => c + '\0').join(''));
    });
    child.kill('SIGTERM');
    await exited;
    if (!fs.existsSync(cache)) throw new Error(`berthd wrote no cache: ${stderr.trim().slice(-300)}`);
  } catch (e) {
    process.stderr.write(`bundle: no code cache for berthd (it starts without one): ${e.message}\n`);
    child.kill('SIGKILL');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
