/**
 * Runs a program on a real terminal (a pty made by Python's pty.fork, an independent peer) and plays a
 * script against it: each step waits until the program's output contains a string, then types some
 * bytes. Collects everything the program printed until it exits (or a deadline), for tests of
 * interactive clients such as `machinectl shell` and `machinectl login`.
 */
import { execFile } from 'node:child_process';

const SCRIPT = String.raw`
import json, os, pty, select, sys, time
steps = json.loads(sys.argv[1]); deadline = time.time() + float(sys.argv[2]); argv = sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b''; i = 0; status = None
while time.time() < deadline:
    if i < len(steps) and steps[i][0].encode() in out:
        time.sleep(0.2)
        os.write(fd, steps[i][1].encode()); i += 1
        continue
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            d = b''
        if not d:
            break
        out += d
    else:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            status = st
            break
if status is None:
    try:
        p, status = os.waitpid(pid, os.WNOHANG)
        if not p:
            os.kill(pid, 9); _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 0
print(json.dumps({'output': out.decode(errors='replace'), 'steps': i, 'code': os.waitstatus_to_exitcode(status)}))
`;

export interface TerminalRun {
  /** Everything the program wrote to the terminal (CR LF line ends, escape sequences included). */
  output: string;
  /** How many steps were played (a step whose cue never appeared stops the script). */
  steps: number;
  /** Exit code, or minus the signal number (-9 when the deadline killed it). */
  code: number;
}

/** Runs `argv` on a new pty; `steps` are [cue, input] pairs (an empty cue matches at once). */
export function onTerminal(argv: string[], steps: [string, string][], { timeoutMs = 30_000, env }: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<TerminalRun> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', SCRIPT, JSON.stringify(steps), String(timeoutMs / 1000), ...argv], { encoding: 'utf8', timeout: timeoutMs + 10_000, env: env ?? process.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python3 terminal driver failed: ${err.message} ${stderr}`));
      resolve(JSON.parse(stdout) as TerminalRun);
    });
  });
}
