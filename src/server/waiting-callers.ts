// When a socket-activated berthd may turn to work that is not the callers': once the Varlink callers
// already waiting on the sockets at start have been answered. Setting up the D-Bus side takes tens of ms of
// CPU; done at once it would come between the first caller, for whom systemd started berthd, and its reply.

/** What is needed of a Varlink server: its open connections, and 'idle' when the last one has closed. */
export interface CountsConnections {
  readonly connectionCount: number;
  on(event: 'idle', f: () => void): unknown;
  off(event: 'idle', f: () => void): unknown;
}

/**
 * Resolves once the connections the servers have accepted by the end of the next event loop turn (those
 * that were pending on the sockets) have all closed, or after `capMs` (a caller that stays connected).
 * Without such connections it resolves at once, so a start for a D-Bus call is not held up.
 */
export function afterWaitingCallers(servers: CountsConnections[], capMs = 100): Promise<void> {
  return new Promise((resolve) => {
    // Two turns: the poll phase of at least one whole turn has accepted what was pending.
    setImmediate(() => setImmediate(() => {
      const busy = servers.filter((s) => s.connectionCount > 0);
      if (!busy.length) {
        resolve();
        return;
      }
      let left = busy.length;
      const done = (): void => {
        clearTimeout(timer);
        for (const s of busy) s.off('idle', one);
        resolve();
      };
      const one = (): void => {
        if (--left === 0) done();
      };
      const timer = setTimeout(done, capMs);
      for (const s of busy) s.on('idle', one);
    }));
  });
}
