/**
 * Node/V8 options berthd is meant to run with. A young generation of 1 MiB semi-spaces (the default
 * lets it grow to 3 × 16 MiB) keeps berthd's resident memory near its live data: replies are small
 * and short-lived, so scavenges stay cheap. Everything that starts berthd (berth-activate, the
 * units' wrapper, the bench) passes these.
 */
export const BERTHD_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=1'];
