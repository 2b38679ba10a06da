/**
 * Who may do what, decided by the peer's credentials (SO_PEERCRED). There is no polkit: the
 * rules are fixed and documented in the README's security policy.
 *
 *   - root (and berthd's own uid) may do everything;
 *   - anyone may List, MapFrom, MapTo, look up users and groups, and Watch;
 *   - Unregister, Terminate and Kill are for root and for the uid that registered the machine;
 *   - Register by a non-root peer is refused unless `allowUserRegister` is set, and then only
 *     for a leader the peer owns.
 */
import type { PeerCredentials } from '../varlink/peer.js';
import { processUid } from '../domain/process.js';

export interface PolicyOptions {
  /** Let non-root peers register machines whose leader they own (default false). */
  allowUserRegister?: boolean;
}

export class Policy {
  private readonly selfUid = process.getuid?.() ?? 0;

  constructor(private readonly options: PolicyOptions = {}) {}

  isPrivileged(peer: PeerCredentials): boolean {
    return peer.uid === 0 || peer.uid === this.selfUid;
  }

  /** `leaderUid` is the real uid owning the leader process. */
  mayRegister(peer: PeerCredentials, leaderUid: number | undefined): boolean {
    if (this.isPrivileged(peer)) return true;
    return this.options.allowUserRegister === true && leaderUid !== undefined && leaderUid === peer.uid;
  }

  /** mayRegister for a leader given by pid (the uid owning it is read from /proc). */
  mayRegisterLeader(peer: PeerCredentials, leaderPid: number | undefined): boolean {
    // /proc is read only when the answer depends on it.
    if (this.isPrivileged(peer)) return true;
    return this.mayRegister(peer, leaderPid !== undefined ? processUid(leaderPid) : undefined);
  }

  /** Unregister, Terminate, Kill: root or the machine's owner. */
  mayManage(peer: PeerCredentials, registeredBy: number | undefined): boolean {
    return this.isPrivileged(peer) || (registeredBy !== undefined && peer.uid === registeredBy);
  }
}
