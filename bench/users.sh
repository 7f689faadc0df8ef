#!/usr/bin/env bash
# slurmbox benchmark for researchers' accounts: prints, from one run on this machine,
#   - `slurmbox user add NAME --ssh-key FILE` on a running 3-node cluster (median of 5,
#     each a new user; the spec edit, the accounts on every node and the home)
#   - ssh login with a key to a shell prompt on the login node and out again (an
#     interactive `ssh -tt` that types `exit`), and a non-interactive `ssh HOST true`,
#     median of 10 each, over loopback to the published port
# Targets (issue #12): user add < 5 s; login to a shell prompt < 1 s.
#
# Usage: bench/users.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
SB=./target/release/slurmbox
NAME="bench-users-$$"
DIR=$(mktemp -d)
PORT=$((20000 + $$ % 20000))
printf 'name = "%s"\n[compute]\ncount = 3\n[login]\nssh_port = %s\n' "$NAME" "$PORT" >"$DIR/cluster.toml"
cleanup() {
    $SB down --purge --yes --quiet --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

$SB up --quiet -f "$DIR/cluster.toml"

adds=()
for i in 1 2 3 4 5; do
    ssh-keygen -q -t ed25519 -N '' -C "user$i@bench" -f "$DIR/user$i"
    t0=$(now)
    $SB user add "user$i" --ssh-key "$DIR/user$i.pub" -f "$DIR/cluster.toml" --quiet
    t1=$(now)
    adds+=("$(secs "$t0" "$t1")")
done

$SB ssh-config user1 -f "$DIR/cluster.toml" >"$DIR/ssh_config"
$SB ssh-config user1 -f "$DIR/cluster.toml" --known-hosts >"$DIR/known_hosts"
ssh_() {
    ssh -F "$DIR/ssh_config" -i "$DIR/user1" -o HostName=127.0.0.1 -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$DIR/known_hosts" "$@"
}
ssh_ "$NAME" true # the first connection, not timed
prompts=() commands=()
for _ in $(seq 10); do
    # (-tt through a pipe: ssh reports the remote terminal's hang-up as an error.)
    t0=$(now); printf 'exit\n' | ssh_ -tt "$NAME" >"$DIR/prompt.out" 2>&1 || true; t1=$(now)
    grep -q '\$ ' "$DIR/prompt.out" || { echo "no shell prompt:" >&2; cat "$DIR/prompt.out" >&2; exit 1; }
    prompts+=("$(secs "$t0" "$t1")")
    t0=$(now); ssh_ "$NAME" true; t1=$(now)
    commands+=("$(secs "$t0" "$t1")")
done

echo "user add, running 3-node cluster: median $(printf '%s\n' "${adds[@]}" | median) s (runs: ${adds[*]}) (target < 5 s)"
echo "ssh login to a shell prompt and out: median $(printf '%s\n' "${prompts[@]}" | median) s (runs: ${prompts[*]}) (target < 1 s)"
echo "ssh HOST true: median $(printf '%s\n' "${commands[@]}" | median) s"
