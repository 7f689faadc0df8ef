#!/usr/bin/env bash
# slurmbox benchmark of rolling changes (issue #23): prints, from one run on this
# machine, on an idle 4-node cluster (Slurm and accounting, nothing else), the time an
# `up` takes that must make every compute container again (`[compute] memory_mb`
# changed): rolling, node by node (`max_unavailable = 1`, the default), against
# `up --now` (every node removed and made again at once, as before rolling changes).
# Each is measured 3 times, alternating; medians, and rolling as a ratio of `--now`
# (target <= 2x).
#
# Usage: bench/rolling.sh [--slurm 24.11|26.05]   (default 24.11)
# SLURMBOX_BIN=path runs another build of slurmbox instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
slurm=24.11
if [ "${1:-}" = --slurm ]; then slurm=${2:?--slurm takes a version}; fi
# shellcheck source=bench/slurmbox-bin.sh
. bench/slurmbox-bin.sh
NAME="benchroll-$$"
SPECS=$(mktemp -d)
spec() {
    cat >"$SPECS/cluster.toml" <<SPEC
name = "$NAME"
slurm = "$slurm"
[compute]
count = 4
cpus = 2
memory_mb = $1
[rest]
enabled = false
[metrics]
enabled = false
[web]
enabled = false
SPEC
}
cleanup() {
    "$SB" down --purge --yes --quiet --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$SPECS"
}
trap cleanup EXIT
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Seconds one `up` with these options takes after the spec changed to memory_mb=$1.
timed_up() {
    local memory=$1
    shift
    spec "$memory"
    local start end
    start=$(date +%s.%N)
    "$SB" up --quiet -f "$SPECS/cluster.toml" "$@"
    end=$(date +%s.%N)
    awk -v a="$end" -v b="$start" 'BEGIN {printf "%.2f\n", a - b}'
}

spec 1000
"$SB" up --quiet -f "$SPECS/cluster.toml"
rolling=() now=()
memory=1000
for i in 1 2 3; do
    memory=$((memory + 8))
    rolling+=("$(timed_up "$memory")")
    memory=$((memory + 8))
    now+=("$(timed_up "$memory" --now)")
    echo "run $i: rolling ${rolling[-1]} s, --now ${now[-1]} s"
done
r=$(printf '%s\n' "${rolling[@]}" | median)
n=$(printf '%s\n' "${now[@]}" | median)
ratio=$(awk -v r="$r" -v n="$n" 'BEGIN {printf "%.2f", r / n}')
verdict=$(awk -v x="$ratio" 'BEGIN {print (x <= 2 ? "met" : "not met")}')
echo
echo "4 idle nodes made again, Slurm $slurm (median of 3):"
printf '  rolling (max_unavailable = 1)   %6.2f s\n' "$r"
printf '  up --now (all at once)          %6.2f s\n' "$n"
printf '  rolling / --now                 %6.2fx   (target <= 2x: %s)\n' "$ratio" "$verdict"
