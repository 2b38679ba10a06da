// esbuild plugins of scripts/bundle.mjs that keep what a socket-activated berthd loads before its first reply
// small: Node built-in modules it needs only later are loaded on first use, and pino's transport machinery
// (worker threads, which berthd never uses: it logs to fd 2 synchronously) is not loaded at all.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** pino's stream modules get src/server/assert-lite.cjs for `assert` (why: that file). */
export const liteAssert = {
  name: 'berth-assert-lite',
  setup(b) {
    b.onResolve({ filter: /^(node:)?assert$/ }, (args) =>
      /[\\/]node_modules[\\/](sonic-boom|thread-stream)[\\/]/.test(args.importer) ? { path: path.resolve('src/server/assert-lite.cjs') } : undefined,
    );
  },
};

/**
 * Built-in modules that berth's own code imports at the top but uses only in some calls (workers for
 * large messages, child processes, file copies): each becomes a module of getters that loads the real
 * one on the first property read. Loading worker_threads alone cost berthd 13 ms of its start.
 */
const LAZY_BUILTINS = ['worker_threads', 'child_process', 'fs/promises', 'timers/promises'];

/** For the CommonJS bundle of berthd only (its code runs on the main thread, never in a worker). */
export const lazyStart = {
  name: 'berth-lazy-start',
  setup(b) {
    const ours = (importer) => importer.startsWith(path.resolve('dist/src') + path.sep);
    const inPino = (importer) => /[\\/]node_modules[\\/]pino[\\/]/.test(importer);
    b.onResolve({ filter: /^(node:)?(worker_threads|child_process|fs\/promises|timers\/promises)$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (ours(args.importer) && LAZY_BUILTINS.includes(name)) return { path: name, namespace: 'berth-lazy-builtin' };
      // pino reads isMainThread when it loads, to decide whether to flush asynchronous destinations at exit.
      if (inPino(args.importer) && name === 'worker_threads') return { path: name, namespace: 'berth-main-thread' };
      return undefined;
    });
    // pino's transports run destinations in worker threads; pino loads thread-stream for them when it loads.
    b.onResolve({ filter: /^thread-stream$/ }, (args) => (inPino(args.importer) ? { path: 'thread-stream', namespace: 'berth-lazy-thread-stream' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'berth-lazy-builtin' }, (args) => {
      const names = Object.keys(require(`node:${args.path}`)).filter((n) => n !== 'default');
      const getters = names.map((n) => `  ${JSON.stringify(n)}: { enumerable: true, get: () => load()[${JSON.stringify(n)}] },`).join('\n');
      return {
        loader: 'js',
        contents: `let real;\nconst load = () => (real ??= require(${JSON.stringify(`node:${args.path}`)}));\nObject.defineProperties(exports, {\n${getters}\n});\n`,
      };
    });
    b.onLoad({ filter: /.*/, namespace: 'berth-main-thread' }, () => ({
      loader: 'js',
      contents: `exports.isMainThread = true;\n`,
    }));
    b.onLoad({ filter: /.*/, namespace: 'berth-lazy-thread-stream' }, () => ({
      loader: 'js',
      resolveDir: path.resolve('.'),
      contents: `module.exports = function ThreadStream(options) {\n  const Real = require('thread-stream');\n  return new Real(options);\n};\n`,
    }));
  },
};
