// Replies with file descriptors (Call.pushFd, sent with SCM_RIGHTS as sd-varlink's push_fd does),
// received by Python's socket.recv_fds, an independent peer. The descriptor arrives with its own
// reply and not with an earlier pipelined one, the server keeps no copy, and a call that fails or is
// oneway sends none and keeps none either.
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/test-server.js';

const noPython =
  spawnSync('python3', ['-c', 'import socket; socket.recv_fds'], { encoding: 'utf8' }).status === 0 ? '' : 'python3 with socket.recv_fds (3.9+) is not available';
if (noPython) console.warn(`fd passing tests skipped: ${noPython}`);

// Sends the messages in one write, then reads replies until `count` have arrived; prints each reply
// with the contents of the descriptors that came along with the bytes that completed it.
const CLIENT = String.raw`
import json, os, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(''.join(m + '\0' for m in sys.argv[3:]).encode())
buf, out, pending = b'', [], []
while len(out) < count:
    d, fds, _, _ = socket.recv_fds(s, 65536, 16)
    if not d:
        break
    buf += d
    pending += fds
    while b'\0' in buf:
        msg, buf = buf.split(b'\0', 1)
        out.append({'reply': json.loads(msg), 'files': [os.read(fd, 100).decode() for fd in pending]})
        pending = []
print(json.dumps(out))
`;

function client(path: string, count: number, ...messages: object[]): Promise<{ reply: Record<string, unknown>; files: string[] }[]> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', CLIENT, path, String(count), ...messages.map((m) => JSON.stringify(m))], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(JSON.parse(stdout)),
    );
  });
}

const openFds = () => readdirSync('/proc/self/fd').length;

describe.skipIf(!!noPython)('replies with file descriptors', () => {
  let t: TestServer;
  let file: string;

  beforeAll(async () => {
    t = await startTestServer();
    file = join(t.dir, 'payload');
    writeFileSync(file, 'the payload');
  });

  afterAll(async () => {
    await t?.close();
  });

  it('sends the descriptor with its own reply, after the pipelined replies before it', async () => {
    const before = openFds();
    const replies = await client(
      t.path,
      3,
      { method: 'io.berth.test.Echo', parameters: { text: 'first' } },
      { method: 'io.berth.test.OpenFile', parameters: { path: file } },
      { method: 'io.berth.test.Echo', parameters: { text: 'third' } },
    );
    expect(replies).toEqual([
      { reply: { parameters: { text: 'first' } }, files: [] },
      { reply: { parameters: { fd: 0 } }, files: ['the payload'] },
      { reply: { parameters: { text: 'third' } }, files: [] },
    ]);
    // berth's copy of the descriptor is closed once sent.
    expect(openFds()).toBe(before);
  });

  it('sends no descriptor with an error and keeps none; oneway calls keep none either', async () => {
    const before = openFds();
    const replies = await client(
      t.path,
      2,
      { method: 'io.berth.test.OpenFile', parameters: { path: file, fail: true } },
      { method: 'io.berth.test.OpenFile', parameters: { path: file }, oneway: true },
      { method: 'io.berth.test.Echo', parameters: { text: 'after' } },
    );
    expect(replies).toEqual([
      { reply: { error: 'io.berth.test.Failed', parameters: { reason: 'after attaching a descriptor' } }, files: [] },
      { reply: { parameters: { text: 'after' } }, files: [] },
    ]);
    expect(openFds()).toBe(before);
  });
});
