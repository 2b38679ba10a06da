/**
 * /dev/console of the container: a pty whose slave is bind-mounted into the container and whose master
 * the launcher reads, copying the output to its own stdout (or a given stream). The launcher keeps a
 * slave fd open too, so the master never reports a hang-up while the payload reopens its console.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { O_CLOEXEC, O_NOCTTY, O_RDWR, errno, libc } from '../../domain/libc.js';
import type { Owner } from './host-dir.js';

export class Console {
  private stream?: tty.ReadStream;
  private constructor(readonly masterFd: number, private slaveFd: number, readonly slavePath: string) {}

  static open(owner: Owner, out: NodeJS.WritableStream): Console {
    const c = libc();
    const m = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) throw new Error(`posix_openpt: errno ${errno()}`);
    const buf = Buffer.alloc(128);
    if (c.grantpt(m) !== 0 || c.unlockpt(m) !== 0 || c.ptsname_r(m, buf, buf.length) !== 0) {
      c.close(m);
      throw new Error(`cannot set up the console pty: errno ${errno()}`);
    }
    const slavePath = buf.subarray(0, buf.indexOf(0)).toString();
    fs.chownSync(slavePath, owner.uid, owner.gid);
    fs.chmodSync(slavePath, 0o600);
    const slaveFd = fs.openSync(slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const con = new Console(m, slaveFd, slavePath);
    const s = new tty.ReadStream(m);
    s.on('data', (d) => out.write(d));
    s.on('error', () => { /* hang-up at the end */ });
    con.stream = s;
    return con;
  }

  close(): void {
    if (this.slaveFd >= 0) { try { fs.closeSync(this.slaveFd); } catch { /* closed */ } this.slaveFd = -1; }
    if (this.stream) { this.stream.destroy(); this.stream = undefined; }
  }
}
