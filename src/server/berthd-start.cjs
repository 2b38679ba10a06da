'use strict';
/**
 * berthd's entry point (installed as dist/bin/berthd.cjs): runs the CommonJS bundle of berthd
 * (berthd-code.cjs) from V8's code cache written at build time (berthd-code.cjs.v8cache), so a
 * socket-activated berthd does not parse and compile its ~1 MB of code before the first reply. V8
 * checks the cache against the Node/V8 build, the flags and the source's length (and here the cache
 * must not be older than the code); a rejected or missing cache only costs the compile.
 * BERTH_WRITE_CODE_CACHE=1 writes the cache when the process exits, with the code berthd ran until
 * then (scripts/bundle.mjs does so after one call).
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const code = path.join(__dirname, 'berthd-code.cjs');
const cacheFile = `${code}.v8cache`;
const text = fs.readFileSync(code, 'utf8');
// The bundle keeps main.ts's #! line, which is no JavaScript inside the wrapper: it becomes a comment.
const source = `(function (exports, require, module, __filename, __dirname) {${text.startsWith('#!') ? '//' : ''}${text}\n})`;
let cachedData;
if (!process.env.BERTH_WRITE_CODE_CACHE) {
  try {
    // V8 compares only the source's length, so a cache older than the code it was made from is not offered.
    if (fs.statSync(cacheFile).mtimeMs >= fs.statSync(code).mtimeMs) cachedData = fs.readFileSync(cacheFile);
  } catch {
    // no cache: compile from source
  }
}
const script = new vm.Script(source, {
  filename: code,
  cachedData,
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
if (process.env.BERTH_DEBUG_CODE_CACHE) {
  process.stderr.write(`berthd: code cache ${cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent'}\n`);
}
if (process.env.BERTH_WRITE_CODE_CACHE) {
  process.once('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
}
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require, mod, code, __dirname);
