#!/usr/bin/env bash
# slurmbox benchmark for containers in jobs (issue #24): prints, from one run on this
# machine, on a 2-node cluster with `[software] containers = true`:
#   - the start-up cost of a container step: `srun -N2 true` against
#     `srun -N2 --container=$HOME/img true`, timed on the login node, alternating,
#     median of 7 each (the image: the dashboard's, `docker save`d and made a bundle
#     with slurmbox-bundle, as a researcher does with their own)
#   - the node image's size with the container runtime (crun) and without
# Targets: a container step adds <= 1 s; the runtime adds <= 60 MB to the image.
#
# Usage: bench/containers.sh [--slurm 24.11|26.05]
set -euo pipefail
cd "$(dirname "$0")/.."
SLURM=24.11
[ "${1:-}" = --slurm ] && SLURM=$2
cargo build --release --quiet
SB=./target/release/slurmbox
NAME="bench-containers-$$"
DIR=$(mktemp -d)
cat >"$DIR/cluster.toml" <<SPEC
name = "$NAME"
slurm = "$SLURM"
accounting = false
[compute]
count = 2
[rest]
enabled = false
[metrics]
enabled = false
[software]
containers = true
SPEC
cleanup() {
    $SB down --purge --yes --quiet --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

$SB up --quiet -f "$DIR/cluster.toml"
image=$($SB image build --quiet --web)
docker save -o "$DIR/img.tar" "$image"
user=$($SB exec -f "$DIR/cluster.toml" -- id -un)
docker cp "$DIR/img.tar" "$NAME-login:/home/$user/img.tar"
docker exec "$NAME-login" chown "$user:" "/home/$user/img.tar"
$SB exec -f "$DIR/cluster.toml" -- slurmbox-bundle img.tar img >/dev/null

# Milliseconds of each run, plain and in the container, alternating (the script runs
# on the login node, where $HOME is the user's).
# shellcheck disable=SC2016
times=$($SB exec -f "$DIR/cluster.toml" -- bash -c '
    ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
    for i in 1 2 3 4 5 6 7; do
        echo "plain $(ms srun -N2 true)"
        echo "container $(ms srun -N2 --container="$HOME/img" true)"
    done')
plain=$(awk '$1 == "plain" { print $2 }' <<<"$times" | median)
inside=$(awk '$1 == "container" { print $2 }' <<<"$times" | median)

size() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%d", $1 / 1000000 }'; }
with=$($SB image build --quiet -f "$DIR/cluster.toml")
without=$($SB image build --quiet --slurm "$SLURM")

echo "Slurm $SLURM, 2 nodes, $(nproc) CPUs"
echo "srun -N2 true:                 median ${plain} ms (7 runs)"
echo "srun -N2 --container=... true: median ${inside} ms (7 runs): $((inside - plain)) ms added (target <= 1000 ms)"
echo "node image: $(size "$without") MB without the runtime, $(size "$with") MB with it: $(($(size "$with") - $(size "$without"))) MB added (target <= 60 MB)"
