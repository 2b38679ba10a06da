/** The small surface generated modules import: kept separate from index.ts to avoid import cycles. */
export { defineInterface } from './interface.js';
export { VarlinkError } from './errors.js';
