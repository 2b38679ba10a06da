// Which scope cgroups berth made itself. berth marks every scope directory it creates with a trusted
// extended attribute (only root can set one, so no user can make berth remove a cgroup it did not make),
// and removes leftovers only where it finds its mark: a scope made by systemd, nspawn or another manager
// is never touched, whatever its name.

import { getXattr, setXattr } from './libc.js';

/** The attribute berth sets on the cgroup directories of the scopes it creates. */
export const SCOPE_MARK = 'trusted.berth.owner';

/** Mark a scope directory as made by `owner` (e.g. `berthd`); false when the file system refuses. */
export function markScope(dir: string, owner: string): boolean {
  return setXattr(dir, SCOPE_MARK, owner);
}

/** Who made this scope directory, by berth's mark, or undefined for one berth did not make. */
export function scopeMaker(dir: string): string | undefined {
  return getXattr(dir, SCOPE_MARK);
}
