// Bundles the three programs into single files under dist/bin/. A socket-activated berthd answers
// its first call ~50 ms sooner from one file than from ~90 modules (measured p50 88 ms vs 142 ms on
// this machine kind), and berth-spawn's path to READY gains the same. koffi (native) and execa
// (loaded lazily, off the hot paths) stay in node_modules.
import { build } from 'esbuild';

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
  // CommonJS dependencies (pino) call require(); give the ES module bundle one.
  banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
  logLevel: 'warning',
});
