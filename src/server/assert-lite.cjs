'use strict';
/**
 * What the bundles give pino's stream modules (sonic-boom, thread-stream) when they ask for `assert`:
 * the one call they make, assert(value, message). Node's own assert module creates process.stderr when
 * it loads (for its colours), which cost a socket-activated berthd 10-20 ms before its first reply;
 * berthd logs through fd 2 directly and never needs that stream.
 */
module.exports = function assert(value, message) {
  if (!value) throw new Error(message ?? 'assertion failed');
};
