#!/usr/bin/env bash
# Builds the C Varlink load generator into dist/bench/loadgen (skipped when the binary is newer than the
# source). Usage: bash bench/build-loadgen.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
src=bench/loadgen.c
out=dist/bench/loadgen
if [[ ${1:-} != --force && -x $out && $out -nt $src ]]; then exit 0; fi
command -v gcc >/dev/null || { echo "build-loadgen: gcc is missing (apt-get install gcc libc6-dev)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
gcc -O2 -pthread -Wall -Wextra -o "$out.tmp" "$src"
mv -f "$out.tmp" "$out"
