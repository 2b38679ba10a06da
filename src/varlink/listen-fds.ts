/**
 * Socket activation: sockets handed over by a service manager or activator.
 *
 * The activator passes descriptors 3, 4, … and describes them in LISTEN_FDS (how many),
 * LISTEN_PID (which process they are for; anyone else ignores them) and LISTEN_FDNAMES (a
 * colon-separated name per descriptor). The variables are removed once read so child processes
 * do not pick them up.
 */
export const LISTEN_FDS_START = 3;

export interface ActivatedSocket {
  fd: number;
  name: string;
}

export function activatedSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ActivatedSocket[] {
  const count = Number(env.LISTEN_FDS ?? '');
  const forPid = Number(env.LISTEN_PID ?? '');
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  delete env.LISTEN_PIDFDID;
  if (!Number.isInteger(count) || count <= 0 || forPid !== pid) return [];
  const out: ActivatedSocket[] = [];
  for (let i = 0; i < count; i++) out.push({ fd: LISTEN_FDS_START + i, name: names[i] || 'unknown' });
  return out;
}
