#!/bin/bash
# slurmbox-jwt: makes sure the cluster's JWT key is there, then runs the rest of its
# command line (the container's main program: slurmbox-init controller|dbd).
#
# The key signs and checks the tokens slurmctld hands out (`scontrol token`,
# `slurmbox token`) and slurmdbd accepts. It is made once, on the controller, from the
# kernel's RNG, into the cluster's NAME-jwt volume, which only the controller and
# slurmdbd mount: readable by the slurm account alone, in no image, variable or plan.
#
# Usage: slurmbox-jwt make|wait|take COMMAND [ARG...]
#   make  the controller: create the key when the volume has none
#   wait  slurmdbd: wait (up to 120 s) for the controller to have made it
#   take  a backup controller: wait for it likewise (the primary's, or the copy
#         slurmbox writes on another host), then hand it to the slurm account
set -euo pipefail

log() { echo "slurmbox-jwt: $*" >&2; }
dir=/var/lib/slurmbox/jwt
key="$dir/jwt_hs256.key"
mode="${1:?usage: slurmbox-jwt make|wait COMMAND...}"
shift

wait_for_key() {
    for _ in $(seq 1200); do
        [ -s "$key" ] && break
        sleep 0.1
    done
    [ -s "$key" ] || { log "no JWT key after 120 s (is the controller running?)"; exit 1; }
}
hand_to_slurm() {
    chown slurm:slurm "$dir" "$key"
    chmod 0700 "$dir"
    chmod 0400 "$key"
}

case "$mode" in
make)
    if [ ! -s "$key" ]; then
        log "making this cluster's JWT key"
        (umask 077 && dd if=/dev/urandom of="$key.new" bs=32 count=1 status=none)
        mv "$key.new" "$key"
    fi
    hand_to_slurm
    ;;
wait) wait_for_key ;;
take)
    wait_for_key
    hand_to_slurm
    ;;
*)
    log "unknown mode '$mode'"
    exit 2
    ;;
esac
exec "$@"
