#!/usr/bin/env bash
# slurmbox A/B benchmark: two builds of slurmbox, their bring-ups interleaved, so that
# both see the same machine. On a small machine single runs of one build spread over a
# second or more (the engine and the daemons share the cores), more than most changes
# save: bench.sh run once with each build cannot tell them apart, this can.
#
# Prints, for each build, every run and the mean of
#   - warm `up`: no containers or volumes (a fresh cluster of the default spec)
#   - `down` then `up` again, the volumes kept
# in rounds: A's run, then B's, ROUNDS times (default 6). Each build gets its own
# cluster (images are shared: a build whose images differ builds its own first).
#
# Usage: bench/ab.sh BUILD_A BUILD_B [ROUNDS]
#   e.g. bench/ab.sh /tmp/slurmbox-before ./target/release/slurmbox 6
set -euo pipefail
A=${1:?usage: bench/ab.sh BUILD_A BUILD_B [ROUNDS]}
B=${2:?usage: bench/ab.sh BUILD_A BUILD_B [ROUNDS]}
ROUNDS=${3:-6}
SPECS=$(mktemp -d)
printf 'name = "ab-a-%s"\n' "$$" >"$SPECS/a.toml"
printf 'name = "ab-b-%s"\n' "$$" >"$SPECS/b.toml"
bin() { if [ "$1" = a ]; then echo "$A"; else echo "$B"; fi; }
cleanup() {
    for v in a b; do
        "$(bin $v)" down --purge --yes --quiet --name "ab-$v-$$" >/dev/null 2>&1 || true
    done
    rm -rf "$SPECS"
}
trap cleanup EXIT
now() { date +%s.%N; }

# `up` once with each, taking `down` and `up` out of the figures the first time (images
# built or checked, the engine warmed up).
for v in a b; do
    "$(bin $v)" up --quiet -f "$SPECS/$v.toml"
    "$(bin $v)" down --purge --yes --quiet --name "ab-$v-$$"
done

run() { # BUILD MODE: one timed `up`; MODE warm starts from nothing, again from `down`
    local sb
    sb=$(bin "$1")
    if [ "$2" = warm ]; then
        "$sb" down --purge --yes --quiet --name "ab-$1-$$" >/dev/null 2>&1 || true
    else
        "$sb" down --yes --quiet --name "ab-$1-$$" >/dev/null 2>&1 || true
    fi
    local t0 t1
    t0=$(now)
    "$sb" up --quiet -f "$SPECS/$1.toml"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

report() { # MODE LABEL
    local runs_a=() runs_b=()
    for _ in $(seq "$ROUNDS"); do
        runs_a+=("$(run a "$1")")
        runs_b+=("$(run b "$1")")
    done
    for v in a b; do
        local runs
        if [ $v = a ]; then runs="${runs_a[*]}"; else runs="${runs_b[*]}"; fi
        printf '  %-26s %s  %6s s   runs: %s\n' "$2" "${v^^}" \
            "$(echo "$runs" | tr ' ' '\n' | awk '{ s += $1 } END { printf "%.2f", s / NR }')" "$runs"
    done
}

echo "slurmbox A/B ($ROUNDS rounds, $(nproc) CPUs): A = $A, B = $B"
report warm "warm up (mean)"
# The volumes of a cluster that is up once are there for `down` then `up`.
for v in a b; do "$(bin $v)" up --quiet -f "$SPECS/$v.toml"; done
report again "down, then up (mean)"
