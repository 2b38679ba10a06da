/** The small surface generated modules import: kept apart from the rest to avoid import cycles. */
export { defineInterface, type WireInt } from './interface.js';
export { VarlinkError } from './errors.js';
