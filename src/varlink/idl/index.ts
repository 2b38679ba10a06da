/** Varlink interface definitions: parse, print canonically, check against systemd's parser. */
export * from './ast.js';
export { parseInterface, MAX_DEPTH, INTERFACE_NAME, MEMBER_NAME, FIELD_NAME, MORE_MARKER } from './parser.js';
export { formatInterface, formatType, groupMembers } from './printer.js';
export { systemdCompatibilityProblems, type CompatibilityProblem } from './compat.js';
