/**
 * The environment of the container's PID 1, as CONTAINER_INTERFACE describes it. Pure: everything it
 * needs is passed in, so tests can check the exact result.
 */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const MANAGER_NAME = 'berth';

/** os-release keys whose values the host passes on as `container_host_<key lowercased>`. */
const HOST_KEYS = ['ID', 'VERSION_ID', 'BUILD_ID', 'VARIANT_ID', 'IMAGE_ID', 'IMAGE_VERSION'];

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!;
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["\\`$])/g, '$1');
    out[m[1]!] = v;
  }
  return out;
}

export interface EnvironmentInput {
  uuid: string; // with dashes
  hostOsRelease: Record<string, string>;
  notifySocket?: string;
  credentialsDirectory?: string;
  listenFds?: number;
  listenFdNames?: string;
  ttys?: string[];
  term?: string;
  setenv?: [string, string][];
}

export function buildEnvironment(i: EnvironmentInput): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH, container: MANAGER_NAME, container_uuid: i.uuid };
  if (i.term) env.TERM = i.term;
  for (const k of HOST_KEYS) {
    const v = i.hostOsRelease[k];
    if (v !== undefined && v !== '') env[`container_host_${k.toLowerCase()}`] = v;
  }
  if (i.notifySocket) env.NOTIFY_SOCKET = i.notifySocket;
  if (i.credentialsDirectory) env.CREDENTIALS_DIRECTORY = i.credentialsDirectory;
  if (i.listenFds && i.listenFds > 0) {
    env.LISTEN_FDS = String(i.listenFds);
    env.LISTEN_PID = '1'; // the container's init is PID 1 in its namespace
    if (i.listenFdNames) env.LISTEN_FDNAMES = i.listenFdNames;
  }
  if (i.ttys && i.ttys.length) env.container_ttys = i.ttys.join(' ');
  for (const [k, v] of i.setenv ?? []) env[k] = v;
  return env;
}

/** `--setenv=NAME=VALUE`, or `--setenv=NAME` to take the value from the launcher's environment. */
export function parseSetenv(arg: string, from: NodeJS.ProcessEnv = process.env): [string, string] {
  const i = arg.indexOf('=');
  const name = i < 0 ? arg : arg.slice(0, i);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name in --setenv=${arg}`);
  if (i >= 0) return [name, arg.slice(i + 1)];
  const v = from[name];
  if (v === undefined) throw new Error(`--setenv=${name}: not set in the launcher's environment`);
  return [name, v];
}
