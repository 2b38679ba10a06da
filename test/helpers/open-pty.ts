/**
 * Calls io.systemd.Machine.Open through Python's socket.recv_fds (an independent peer that can take
 * file descriptors, which berth's own client does not), then proves the descriptor is the master of
 * the terminal the reply names: it opens the slave under `root` + ptyPath, writes through the slave
 * and reads the bytes back from the master.
 */
import { execFile, spawnSync } from 'node:child_process';

const SCRIPT = String.raw`
import json, os, socket, stat, sys, select
path, message, root, how, settle = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(message.encode() + b'\0')
data, fds = b'', []
while not data.endswith(b'\0'):
    d, f, _, _ = socket.recv_fds(s, 65536, 16)
    if not d:
        break
    data += d
    fds += f
reply = json.loads(data.rstrip(b'\0').decode())
out = {'reply': reply, 'fds': len(fds)}
if fds and 'ptyPath' in reply.get('parameters', {}):
    master = fds[reply['parameters']['ptyFileDescriptor']]
    out['master'] = os.readlink('/proc/self/fd/%d' % master)
    if how == 'read':
        # What the program on the other end prints, until it exits (EIO once no one holds the slave).
        got = b''
        while select.select([master], [], [], settle)[0]:
            try:
                d = os.read(master, 4096)
            except OSError:
                break
            if not d:
                break
            got += d
        out['output'] = got.decode(errors='replace')
        print(json.dumps(out))
        sys.exit(0)
    slave_path = os.path.join(root, reply['parameters']['ptyPath'].lstrip('/'))
    st = os.stat(slave_path)
    out['slaveUid'] = st.st_uid
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.write(slave, b'ping\n')
    got = b''
    while b'\n' not in got and select.select([master], [], [], 5)[0]:
        got += os.read(master, 100)
    out['echo'] = got.decode()
print(json.dumps(out))
`;

export interface OpenResult {
  reply: { parameters?: { ptyFileDescriptor?: number; ptyPath?: string }; error?: string };
  fds: number;
  master?: string;
  slaveUid?: number;
  echo?: string;
  /** With `read`: everything the program on the terminal printed until it exited. */
  output?: string;
}

/** Why these checks cannot run here, or undefined. */
export function cannotOpenPty(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import socket; socket.recv_fds'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'python3 with socket.recv_fds (3.9+) is not available';
}

/**
 * Sends Open to `socket`; `root` is where the machine's /dev/pts is reachable from here. With `read`,
 * collects what the program on the terminal prints instead of echoing through the slave, until it
 * exits or stays quiet for `settleMs`. Runs the
 * client asynchronously, so a server in this same process keeps answering.
 */
export function openPty(socket: string, parameters: object, root: string, { read = false, settleMs = 10_000 } = {}): Promise<OpenResult> {
  const message = JSON.stringify({ method: 'io.systemd.Machine.Open', parameters });
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', SCRIPT, socket, message, root, read ? 'read' : 'echo', String(settleMs / 1000)], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python3 Open client failed: ${err.message} ${stderr}`));
      resolve(JSON.parse(stdout) as OpenResult);
    });
  });
}
