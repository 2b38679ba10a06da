/**
 * The client side of the D-Bus SASL handshake: a NUL byte, `AUTH EXTERNAL <uid as hex of its
 * decimal digits>` (the broker checks it against the socket's peer credentials), optionally
 * `NEGOTIATE_UNIX_FD`, then `BEGIN`, after which the stream carries messages.
 */
import { DBusError, DBusErrors } from './errors.js';
import type { ByteStream } from './transport.js';
import { closeFd } from './unix-socket.js';

export interface AuthResult {
  /** The server's GUID from its OK line. */
  guid: string;
  /** Whether the server agreed to pass descriptors. */
  unixFds: boolean;
}

const MAX_LINE = 16 * 1024;

export function authenticate(t: ByteStream, options: { uid?: number; negotiateFds?: boolean; timeoutMs?: number } = {}): Promise<AuthResult> {
  const uid = options.uid ?? process.geteuid?.() ?? 0;
  const negotiate = options.negotiateFds ?? true;
  return new Promise((resolve, reject) => {
    let pending = '';
    let guid = '';
    let step: 'auth' | 'fds' = 'auth';
    const finish = (err: Error | null, result?: AuthResult) => {
      clearTimeout(timer);
      t.off('data', onData);
      t.off('close', onClose);
      if (err) {
        t.close(err);
        reject(err);
      } else resolve(result!);
    };
    const fail = (why: string) => finish(new DBusError(DBusErrors.AuthFailed, why));
    const onLine = (line: string) => {
      if (step === 'auth') {
        if (!line.startsWith('OK ')) return fail(`server refused AUTH EXTERNAL: ${line.slice(0, 200)}`);
        guid = line.slice(3).trim();
        if (!negotiate) {
          t.write(Buffer.from('BEGIN\r\n'));
          return finish(null, { guid, unixFds: false });
        }
        step = 'fds';
        t.write(Buffer.from('NEGOTIATE_UNIX_FD\r\n'));
        return;
      }
      t.write(Buffer.from('BEGIN\r\n'));
      finish(null, { guid, unixFds: line.startsWith('AGREE_UNIX_FD') });
    };
    const onData = (data: Buffer, fds: number[]) => {
      fds.forEach(closeFd); // nothing legitimate carries descriptors before BEGIN
      pending += data.toString('latin1');
      let nl: number;
      while ((nl = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        onLine(line);
      }
      if (pending.length > MAX_LINE) fail('authentication line too long');
    };
    const onClose = (err?: Error) => finish(new DBusError(DBusErrors.AuthFailed, `connection closed during authentication${err ? ': ' + err.message : ''}`));
    const timer = setTimeout(() => fail('authentication timed out'), options.timeoutMs ?? 25_000);
    t.on('data', onData);
    t.on('close', onClose);
    const hexUid = Buffer.from(String(uid), 'ascii').toString('hex');
    t.write(Buffer.from(`\0AUTH EXTERNAL ${hexUid}\r\n`, 'latin1'));
  });
}
