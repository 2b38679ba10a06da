// Work a registry change leaves that need not hold up the caller's answer: watching or releasing a
// leader's pidfd and making or removing its unit link. A machine's state file is written (or removed)
// before the answer, so a restart after kill -9 finds exactly the acknowledged machines; the link is
// rebuilt from the file's UNIT= line by restore.
//
// The work runs as a microtask, so after the call that queued it has finished and its reply has been
// written (a Varlink handler that returns at once is answered in the same callback) but before any other
// event — another connection's call, a leader's exit — is handled. Each registry change settles what
// is queued before it starts, so the order of changes on disk and in the leader watcher is the order of
// the calls, also when one read brings several calls.

export class AfterAnswer {
  #queue: (() => void)[] = [];

  constructor(private readonly onError: (err: unknown) => void) {}

  /** Queue `work`; it runs after the current call, in the order queued. */
  defer(work: () => void): void {
    if (this.#queue.push(work) === 1) queueMicrotask(() => this.settle());
  }

  /** Run everything queued now. */
  settle(): void {
    while (this.#queue.length > 0) {
      const q = this.#queue;
      this.#queue = [];
      for (const work of q) {
        try {
          work();
        } catch (err) {
          this.onError(err);
        }
      }
    }
  }
}
