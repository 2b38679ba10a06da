/**
 * The user and group records machined 257 synthesizes for IDs of user-namespaced containers.
 * Key order matters to byte-for-byte comparisons and is the order these literals are written in.
 */

/** The host's `nobody` group: every synthesized user's primary group, whatever the container maps. */
export const GID_NOBODY = 65534;
/** The login shell of synthesized users (systemd's compile-time nologin path on Debian). */
export const NOLOGIN_SHELL = '/usr/sbin/nologin';

export interface ContainerUserRecord {
  userName: string;
  uid: number;
  gid: number;
  realName: string;
  homeDirectory: string;
  shell: string;
  locked: boolean;
  service: string;
  disposition: 'container';
}

export interface ContainerGroupRecord {
  groupName: string;
  gid: number;
  description: string;
  service: string;
  disposition: 'container';
}

export function userNameFor(machine: string, insideUid: number): string {
  return `vu-${machine}-${insideUid}`;
}

export function groupNameFor(machine: string, insideGid: number): string {
  return `vg-${machine}-${insideGid}`;
}

export function userRecord(userName: string, hostUid: number, machine: string, insideUid: number, service: string): ContainerUserRecord {
  return {
    userName,
    uid: hostUid,
    gid: GID_NOBODY,
    realName: `UID ${insideUid} of Container ${machine}`,
    homeDirectory: '/',
    shell: NOLOGIN_SHELL,
    locked: true,
    service,
    disposition: 'container',
  };
}

export function groupRecord(groupName: string, hostGid: number, machine: string, insideGid: number, service: string): ContainerGroupRecord {
  return {
    groupName,
    gid: hostGid,
    description: `GID ${insideGid} of Container ${machine}`,
    service,
    disposition: 'container',
  };
}
