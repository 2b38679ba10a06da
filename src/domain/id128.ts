// 128-bit IDs (machine IDs, boot IDs, UUIDs): parsing either spelling systemd accepts, and the two forms berth
// writes them in: 32 lowercase hex digits on the wire, the dashed UUID form for SMBIOS and container_uuid=.

import { randomUUID } from 'node:crypto';

const PLAIN = /^[0-9a-fA-F]{32}$/;
const DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * Parse a 128-bit ID given as 32 hex digits or in UUID form. Returns the 32 lowercase hex digits, `''` for the
 * all-zero ID (which means "no ID"), or undefined when the text is not an ID.
 */
export function parseId128(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  let hex: string;
  if (PLAIN.test(s)) hex = s;
  else if (DASHED.test(s)) hex = s.replace(/-/g, '');
  else return undefined;
  hex = hex.toLowerCase();
  return /^0+$/.test(hex) ? '' : hex;
}

/** 32 hex digits as a dashed lowercase UUID. */
export function formatUuid(hex: string): string {
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Why a UUID given on a command line was refused. */
export class UuidError extends Error {
  override name = 'UuidError';
  constructor(
    readonly value: string,
    readonly reason: 'invalid' | 'null',
  ) {
    super(reason === 'null' ? `the null UUID cannot identify a machine` : `not a valid UUID: "${value}" (invalid UUID: expected 32 hex digits, or 8-4-4-4-12 with dashes)`);
  }
}

/**
 * A UUID that names a machine (--uuid): either spelling, in the dashed lowercase form. Throws UuidError for
 * text that is no ID and for the all-zero one.
 */
export function parseMachineUuid(value: string): string {
  const hex = parseId128(value);
  if (hex === undefined) throw new UuidError(value, 'invalid');
  if (hex === '') throw new UuidError(value, 'null');
  return formatUuid(hex);
}

/** A fresh random (version 4) UUID, dashed. */
export const newUuid = (): string => randomUUID();
