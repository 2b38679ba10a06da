// Linux signal numbers by name, as berth-spawn (--kill-signal), berthctl (kill --signal) and berthd (Kill)
// read them: one table of the standard signals, the real-time range, and the highest number Kill accepts.

/** The standard Linux signals (x86, arm, most others), without the SIG prefix. */
export const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** The first real-time signal as glibc hands it to programs (the kernel's 32 and 33 are glibc's own). */
export const SIGRTMIN = 34;
/** Highest signal number (_NSIG - 1 on Linux); also the highest Kill accepts. */
export const SIGNAL_MAX = 64;
export const SIGRTMAX = SIGNAL_MAX;
/** What stops a container's systemd cleanly (nspawn's default --kill-signal). */
export const SIGRTMIN_PLUS_3 = SIGRTMIN + 3;

/**
 * A signal given by number (1..64) or name: `TERM`, `SIGTERM`, `sigterm`, `RTMIN`, `RTMIN+N`, `RTMAX-N`.
 * Undefined when it names no signal.
 */
export function parseSignal(s: string): number | undefined {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n >= 1 && n <= SIGNAL_MAX ? n : undefined;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const rt = /^RT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
    const offset = rt[3] === undefined ? 0 : Number(rt[3]);
    if ((rt[1] === 'MIN' && rt[2] === '-') || (rt[1] === 'MAX' && rt[2] === '+')) return undefined;
    const n = rt[2] === '-' ? base - offset : base + offset;
    return n >= SIGRTMIN && n <= SIGRTMAX ? n : undefined;
  }
  return Object.hasOwn(SIGNALS, name) ? SIGNALS[name] : undefined;
}
