/**
 * The record a running berth-spawn keeps of what it made for one machine (RUNDIR/launcher.json), and the marks
 * it puts on what lives outside RUNTIME: a trusted xattr on its scope directories (domain/scope-mark.ts) and
 * an interface alias on its veth link. Each part is noted before it is made, so that a later process finds
 * everything a berth-spawn killed outright left; the berth-spawn is named by pid AND start time (and boot),
 * so a reused pid never passes for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bootId, readStartTime } from '../domain/process.js';

export const RECORD_FILE = 'launcher.json';

export interface LaunchRecordData {
  name: string;
  kind: 'container' | 'vm';
  pid: number;
  starttime: number;
  bootId: string;
  runDir: string;
  /** the tree lock file (containers) */
  treeLock?: string;
  /** the base of the leased UID range (its file is RUNTIME/berth/uid-leases/BASE) */
  uidLease?: number;
  /** the scope's cgroup directories, one per hierarchy */
  scope?: string[];
  /** the host side of the veth pair */
  veth?: string;
}

/** What berth-spawn marks its scopes with: one value per runtime directory, distinct from berthd's. */
export function berthSpawnMark(runtimeDir: string): string {
  return `berth-spawn ${path.resolve(runtimeDir)}`;
}

/** The alias of a veth link made for machine `name` (the mark, then the machine's name). */
export function vethAlias(runtimeDir: string, name: string): string {
  return `${berthSpawnMark(runtimeDir)} ${name}`;
}

/** The live record of this process: each note() rewrites the file (atomically) before the noted part is made. */
export class LaunchRecord {
  private constructor(private readonly file: string, private data: LaunchRecordData) {}

  /** Starts the record of this process in `runDir` (which must exist). */
  static create(runDir: string, name: string, kind: LaunchRecordData['kind']): LaunchRecord {
    const r = new LaunchRecord(path.join(runDir, RECORD_FILE), {
      name, kind, pid: process.pid, starttime: readStartTime(process.pid) ?? 0, bootId: bootId(), runDir,
    });
    r.write();
    return r;
  }

  note(patch: Partial<Pick<LaunchRecordData, 'treeLock' | 'uidLease' | 'scope' | 'veth'>>): void {
    this.data = { ...this.data, ...patch };
    this.write();
  }

  private write(): void {
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.data) + '\n');
    fs.renameSync(tmp, this.file);
  }
}

/** The record in a run directory, if there is a readable one. */
export function readLaunchRecord(runDir: string): LaunchRecordData | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(runDir, RECORD_FILE), 'utf8')) as LaunchRecordData;
    return typeof r.pid === 'number' && typeof r.starttime === 'number' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Is the process a record names still that process (same boot, same pid, same start time)? */
export function launcherAlive(r: { pid: number; starttime: number; bootId?: string }): boolean {
  if (r.bootId !== undefined && r.bootId !== bootId()) return false;
  return r.pid > 0 && readStartTime(r.pid) === r.starttime;
}
