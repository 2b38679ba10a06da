/**
 * Pseudo terminals inside a machine, for io.systemd.Machine.Open.
 *
 * machined forks a child into the leader's namespaces to allocate one. berth opens the ptmx that the
 * machine itself sees, through /proc/LEADER/root with openat2's RESOLVE_IN_ROOT: the path is resolved
 * in the leader's mount namespace and root, so the terminal comes from the machine's own devpts instance and its number is the one
 * the machine sees under /dev/pts. In a user-namespaced machine the terminal is handed to the
 * machine's root, as one allocated inside it would be. `.host` gets a terminal of the host.
 */
import fs from 'node:fs';
import { SystemError } from '../varlink/errors.js';
import { ENODEV, ENOENT, errno as libcErrno, libc, O_CLOEXEC, O_NOCTTY, O_RDWR, openPtyPeer } from '../domain/libc.js';
import { machineRoot, type Machine } from './registry/machine.js';
import { mapIdToHost } from './userdb/idmap.js';
import { openInRoot } from './registry/machine-files.js';

export interface MachinePty {
  /** The master side, owned by the caller (pass it on, then close it). */
  fd: number;
  /** The terminal's path inside the machine, /dev/pts/N. */
  path: string;
}

/** The device number of /dev/ptmx and of every devpts instance's ptmx: major 5, minor 2. */
const PTMX_RDEV = (5 << 8) | 2;

/** Opens a new pseudo terminal in the machine; throws io.systemd.System with the errno on failure. */
export function openMachinePty(m: Machine): MachinePty {
  const root = machineRoot(m);
  let fd: number;
  try {
    // Resolved as inside the machine: its /dev/ptmx is usually a symlink to pts/ptmx, relative or not.
    fd = openInRoot(root, '/dev/ptmx', O_RDWR | O_NOCTTY | O_CLOEXEC);
  } catch (e) {
    throw new SystemError((e as { errno?: number }).errno ?? ENOENT);
  }
  // The machine controls what its /dev/ptmx is. Only the pty multiplexer itself (character device
  // 5:2) is accepted, so that a device node or file of another kind is never handed out.
  const st = fs.fstatSync(fd);
  if (!st.isCharacterDevice() || st.rdev !== PTMX_RDEV) {
    fs.closeSync(fd);
    throw new SystemError(ENODEV);
  }
  const c = libc();
  const name = Buffer.alloc(128);
  if (c.unlockpt(fd) !== 0 || c.ptsname_r(fd, name, name.length) !== 0) {
    const e = libcErrno();
    fs.closeSync(fd);
    throw new SystemError(e || ENOENT);
  }
  const path = name.subarray(0, name.indexOf(0)).toString();
  if (m.class !== 'host') {
    const owner = mapIdToHost(m.leader.pid, 'uid_map', 0);
    // Only when the machine has a root of its own: in the host's user namespace uid 0 is root already.
    if (owner !== undefined && owner !== 0) {
      const peer = openPtyPeerOwnedBy(fd, owner);
      if (peer >= 0) fs.closeSync(peer);
    }
  }
  return { fd, path };
}

/**
 * Opens the terminal side of `master` through the master itself (TIOCGPTPEER: never a path inside
 * the machine, which a symlink could point elsewhere), given to host uid `owner` when one is named.
 * The chown is best effort: the terminal works either way, and inside an unowned one shows as
 * nobody's. Returns the descriptor, or -1 (see libc errno()).
 */
export function openPtyPeerOwnedBy(master: number, owner?: number): number {
  const peer = openPtyPeer(master);
  if (peer >= 0 && owner !== undefined) {
    try {
      fs.fchownSync(peer, owner, -1);
    } catch {
      // see above
    }
  }
  return peer;
}
