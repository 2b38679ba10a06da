/** Temporary directories that tests remove again. */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh directory under the system temp dir. `world` makes it reachable (0755) for clients run
 * as an unprivileged user.
 */
export function tempDir(prefix: string, { world = false } = {}): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `berth-${prefix}-`));
  if (world) chmodSync(path, 0o755);
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A unique abstract socket name (no file system entry, so nothing to remove). */
export function abstractName(tag: string): string {
  return `berth-test-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}
