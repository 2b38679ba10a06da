/**
 * Undo actions collected while a machine is being set up, run in reverse. A failed start runs all of
 * them, so a bad launch leaves no cgroup, registration, lease, socket, mount or process behind.
 */
export interface TeardownStep { what: string; run: () => void | Promise<void>; onlyOnFailure: boolean }

export class Teardown {
  private steps: TeardownStep[] = [];
  readonly errors: string[] = [];

  add(what: string, run: () => void | Promise<void>, opts: { onlyOnFailure?: boolean } = {}): void {
    this.steps.push({ what, run, onlyOnFailure: opts.onlyOnFailure ?? false });
  }

  async run(failed: boolean): Promise<void> {
    while (this.steps.length) {
      const s = this.steps.pop()!;
      if (s.onlyOnFailure && !failed) continue;
      try { await s.run(); } catch (e) { this.errors.push(`${s.what}: ${(e as Error).message}`); }
    }
  }
}

/** Wait for a condition with a deadline (checks every `intervalMs`, first check immediately). */
export async function waitFor<T>(check: () => T | undefined | false, timeoutMs: number, what: string, intervalMs = 2): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
