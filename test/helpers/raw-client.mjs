// A raw Varlink client run as a separate process (typically as another user through setpriv), for
// tests about peer credentials, permissions and per-uid connection limits. Plain JavaScript with
// no imports beyond Node, so any user can run it from anywhere.
//
//   node raw-client.mjs SOCKET CONNECTIONS 'MESSAGE_JSON_ARRAY' [--hold]
//
// Opens CONNECTIONS connections, sends every message on each and prints one JSON line:
//   {"pid":N,"uid":N,"connections":[{"replies":[...],"closed":bool}, ...]}
// once every connection got a reply to each message or was closed. With --hold it then keeps the
// connections open until its stdin ends.
import { connect } from 'node:net';

// Run as a file, argv[1] is the script; run with -e, the arguments start at argv[1].
const args = process.argv.slice(process.argv[1]?.endsWith('raw-client.mjs') ? 2 : 1);
const [path, count, messagesJson, hold] = args;
const messages = JSON.parse(messagesJson);
const results = [];
let pending = Number(count);

function finishOne() {
  if (--pending > 0) return;
  process.stdout.write(JSON.stringify({ pid: process.pid, uid: process.getuid(), gid: process.getgid(), connections: results }) + '\n');
  if (hold === '--hold') process.stdin.on('end', () => process.exit(0)).resume();
  else process.exit(0);
}

for (let i = 0; i < Number(count); i++) {
  const r = { replies: [], closed: false, error: null };
  results.push(r);
  const s = connect({ path });
  let buf = '';
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    finishOne();
  };
  s.on('connect', () => {
    for (const m of messages) s.write(JSON.stringify(m) + '\0');
  });
  s.on('data', (d) => {
    buf += d.toString('utf8');
    let nul;
    while ((nul = buf.indexOf('\0')) !== -1) {
      r.replies.push(JSON.parse(buf.slice(0, nul)));
      buf = buf.slice(nul + 1);
    }
    if (r.replies.length >= messages.length) finish();
  });
  s.on('error', (e) => {
    r.error = e.code ?? e.message;
  });
  s.on('close', () => {
    r.closed = true;
    finish();
  });
}
