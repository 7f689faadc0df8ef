#!/usr/bin/env bash
# slurmbox benchmark of the backup controller: prints, from one run on this machine,
#   - the takeover time: the primary's container killed (SIGKILL through the engine,
#     which leaves it down, as a lost host would be) until `sbatch` from the login node
#     succeeds again; median of 5 (target <= 30 s), with SlurmctldTimeout, which bounds
#     how long the backup waits before it takes charge
#   - how long the primary takes to be in charge again once its container starts
#
# Usage: bench/takeover.sh [--slurm 24.11|26.05]   (default 24.11)
# SLURMBOX_BIN=path runs another build of slurmbox instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
slurm=24.11
if [ "${1:-}" = --slurm ]; then slurm=${2:?--slurm takes a version}; fi
# shellcheck source=bench/slurmbox-bin.sh
. bench/slurmbox-bin.sh
NAME="benchha-$$"
SPECS=$(mktemp -d)
printf 'name = "%s"\nslurm = "%s"\n[controller]\nbackup = true\n' "$NAME" "$slurm" >"$SPECS/ha.toml"
cleanup() {
    "$SB" down --purge --yes --quiet --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$SPECS"
}
trap cleanup EXIT

now() { date +%s.%N; }
"$SB" up -f "$SPECS/ha.toml" --quiet
timeout_s=$("$SB" exec --name "$NAME" -- scontrol show config | awk '$1 == "SlurmctldTimeout" {print $3}')

in_charge() {
    "$SB" status --name "$NAME" --json |
        python3 -c 'import json,sys; c=json.load(sys.stdin)["controllers"]; print(next((x["name"] for x in c if x["in_charge"]), "-"))'
}

takeovers=() returns=()
for i in 1 2 3 4 5; do
    docker kill "$NAME-controller" >/dev/null
    start=$(now)
    until "$SB" exec --name "$NAME" -- sbatch -o /dev/null --wrap true >/dev/null 2>&1; do sleep 0.2; done
    took=$(awk -v a="$(now)" -v b="$start" 'BEGIN {printf "%.1f", a - b}')
    takeovers+=("$took")
    echo "run $i: sbatch answered ${took} s after the kill (in charge: $(in_charge))"
    docker start "$NAME-controller" >/dev/null
    start=$(now)
    until [ "$(in_charge)" = controller ]; do sleep 0.5; done
    back=$(awk -v a="$(now)" -v b="$start" 'BEGIN {printf "%.1f", a - b}')
    returns+=("$back")
    echo "run $i: the primary in charge again ${back} s after its container started"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${takeovers[@]}")
met=$(awk -v m="$m" 'BEGIN {print (m <= 30) ? 1 : 0}')
echo
echo "takeover after the primary is killed: median ${m} s of 5 (target <= 30 s: $([ "$met" = 1 ] && echo met || echo NOT met)); SlurmctldTimeout=${timeout_s}"
echo "the primary back in charge after its container starts: median $(median "${returns[@]}") s of 5"
