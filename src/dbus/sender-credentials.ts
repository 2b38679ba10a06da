/**
 * Who sent a message, asked of the broker once per sender rather than once per call. What
 * GetConnectionCredentials answers for a unique name is fixed when that connection is made (its peer
 * credentials), and a unique name is never given out twice on a bus, so an answer stays true for as long
 * as the name is known; a name the broker says has left (NameOwnerChanged with no new owner) is dropped,
 * and so is the oldest once the table is full. A descriptor the broker attached (dbus-broker's ProcessFD)
 * is closed, not kept: what is cached is the uid, the pid, the groups and the label.
 */
import type { Connection } from './connection.js';
import type { Message } from './message.js';
import { addMatch, getConnectionCredentials, type Credentials } from './bus.js';
import { closeFd } from './unix-socket.js';

/** Every unique name that leaves the bus (NameOwnerChanged NAME OLD ''), told by the broker. */
const NAME_GONE = "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg2=''";

export class SenderCredentials {
  readonly #known = new Map<string, Promise<Credentials>>();
  #watching = false;

  constructor(
    private readonly conn: Connection,
    private readonly capacity = 4096,
  ) {}

  /** The credentials of `sender` (a copy the caller may change); a failed lookup is not remembered. */
  async get(sender: string): Promise<Credentials> {
    // Only unique names are fixed to one connection; anything else is asked every time.
    if (!sender.startsWith(':')) return getConnectionCredentials(this.conn, sender);
    this.#watch();
    let p = this.#known.get(sender);
    if (!p) {
      p = lookup(this.conn, sender);
      this.#known.set(sender, p);
      if (this.#known.size > this.capacity) this.#known.delete(this.#known.keys().next().value!);
      p.catch(() => {
        if (this.#known.get(sender) === p) this.#known.delete(sender);
      });
    }
    return { ...(await p) };
  }

  /** How many senders are remembered (for tests). */
  get size(): number {
    return this.#known.size;
  }

  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.conn.on('signal', (m: Message) => this.#onSignal(m));
    // Without the match the table is still right, only bounded by its capacity rather than by who is connected.
    addMatch(this.conn, NAME_GONE).catch(() => undefined);
  }

  #onSignal(m: Message): void {
    if (m.member !== 'NameOwnerChanged' || m.sender !== 'org.freedesktop.DBus' || m.signature !== 'sss') return;
    const [name, , owner] = m.body as [string, string, string];
    if (owner === '') this.#known.delete(name);
  }
}

async function lookup(conn: Connection, sender: string): Promise<Credentials> {
  const c = await getConnectionCredentials(conn, sender);
  if (c.pidfd !== undefined) {
    closeFd(c.pidfd);
    delete c.pidfd;
  }
  return c;
}
