// Preloaded into berthd (node --require) by the lazy-native test: appends one line to the file named by
// BERTH_NATIVE_LOG for every native module the process loads (koffi required, or any .node file opened),
// each with the stack that loaded it, so a test can tell when berthd first needed libc.
'use strict';
const fs = require('node:fs');
const Module = require('node:module');

const log = process.env.BERTH_NATIVE_LOG;
delete process.env.BERTH_NATIVE_LOG;
if (log) {
  const record = (what) => fs.appendFileSync(log, `${what}\n${new Error('loaded from').stack.split('\n').slice(2, 12).join('\n')}\n`);
  const load = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'koffi') record('require koffi');
    return load.call(this, request, ...rest);
  };
  const dlopen = process.dlopen;
  process.dlopen = function (module, filename, ...rest) {
    record(`dlopen ${filename}`);
    return dlopen.call(this, module, filename, ...rest);
  };
}
