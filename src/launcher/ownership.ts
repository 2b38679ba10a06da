/**
 * Shifting a container tree's ownership onto its UID range (nspawn's `--private-users-ownership=chown`):
 * every inode's owner keeps its low 16 bits and moves to the new base. Modes are restored afterwards
 * because chown clears set-user/group-ID bits. Other file systems mounted below the tree are not entered.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ShiftResult { inodes: number; changed: number }

export function shiftTree(root: string, base: number, range = 0x10000): ShiftResult {
  const rootDev = fs.lstatSync(root).dev;
  const res: ShiftResult = { inodes: 0, changed: 0 };
  const map = (id: number): number => {
    const low = id & 0xffff;
    return low < range ? base + low : id;
  };
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.dev !== rootDev) return;
    res.inodes++;
    const uid = map(st.uid);
    const gid = map(st.gid);
    if (uid !== st.uid || gid !== st.gid) {
      fs.lchownSync(p, uid, gid);
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) fs.chmodSync(p, st.mode & 0o7777);
      res.changed++;
    }
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e));
  };
  visit(root);
  return res;
}
