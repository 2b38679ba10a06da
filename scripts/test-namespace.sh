#!/usr/bin/env bash
# Runs the test command ("$@") in a mount namespace of its own whose /var/lib/machines is an empty tmpfs:
# the image tests (berthd and the real machined acting on the same pool, machinectl's image verbs) create,
# rename, mark immutable and remove images there, and must never touch a pool the host really uses.
# Everything else (/run, cgroups, the network) is the host's, as the other tests expect.
set -euo pipefail
if [[ ${BERTH_TEST_NAMESPACE:-} == 1 ]]; then exec "$@"; fi
exec unshare -m --propagation private bash -c '
set -e
mkdir -p /var/lib/machines
mount -t tmpfs -o mode=0700 tmpfs /var/lib/machines
export BERTH_TEST_NAMESPACE=1
exec "$@"' test-namespace "$@"
