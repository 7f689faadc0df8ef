#!/usr/bin/env bash
# slurmbox benchmark of the REST API and metrics: prints, from one run on this machine,
#   - what slurmrestd's and Prometheus's containers add to a warm `up` (median of 3
#     with both, median of 3 with `[rest]` and `[metrics]` off) and their memory
#   - `GET /slurm/v0.0.42/jobs` with 1,000 jobs in the queue: median of 10 requests over
#     the published port, against `squeue --json` through `slurmbox exec` in the same run
#     (target <= 0.5 s)
#   - one scrape of every metrics endpoint with those 1,000 jobs, as Prometheus timed
#     it (target <= 1 s)
#   - Prometheus's resident memory after SOAK minutes of scraping (target <= 250 MB
#     after an hour on the default cluster)
#
# Usage: bench/rest.sh [--slurm 24.11|26.05] [--soak MINUTES]   (default 24.11, 5 minutes)
# SLURMBOX_BIN=path runs another build of slurmbox instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
slurm=24.11 soak=5
while [ $# -gt 0 ]; do
    case "$1" in
    --slurm) slurm="$2"; shift 2 ;;
    --soak) soak="$2"; shift 2 ;;
    *) echo "usage: bench/rest.sh [--slurm 24.11|26.05] [--soak MINUTES]" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/slurmbox-bin.sh
. bench/slurmbox-bin.sh
NAME="benchrest-$$"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REST_PORT=$(free_port)
METRICS_PORT=$(free_port)
SPECS=$(mktemp -d)
printf 'name = "%s"\nslurm = "%s"\n[rest]\nport = %s\n[metrics]\nport = %s\n' \
    "$NAME" "$slurm" "$REST_PORT" "$METRICS_PORT" >"$SPECS/on.toml"
printf 'name = "%s"\nslurm = "%s"\n[rest]\nenabled = false\n[metrics]\nenabled = false\n' \
    "$NAME" "$slurm" >"$SPECS/off.toml"
cleanup() {
    $SB down --purge --yes --quiet --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$SPECS"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
oneline() { tr '\n' ' '; }

warm() { # SPEC: prints the runs of three warm `up`s of a fresh cluster
    for _ in 1 2 3; do
        $SB down --purge --yes --quiet --name "$NAME" 2>/dev/null || true
        t0=$(now); $SB up --quiet -f "$SPECS/$1.toml"; t1=$(now)
        secs "$t0" "$t1"; echo
    done
}
OFF=$(warm off)
ON=$(warm on)

mib() { # CONTAINER: its memory use as the engine counts it
    docker stats --no-stream --format '{{.MemUsage}}' "$1" | cut -d/ -f1 | tr -d ' '
}

# 1,000 jobs held in the queue (the loop runs in the login node).
# shellcheck disable=SC2016
$SB exec --name "$NAME" -- bash -c \
    'for i in $(seq 1000); do sbatch --hold --quiet --wrap=true -o /dev/null; done'
queued=$($SB exec --name "$NAME" -- bash -c 'squeue -h | wc -l')

TOKEN=$($SB token --name "$NAME" researcher | sed -n 's/^SLURM_JWT=//p')
rest_times=$(for _ in $(seq 10); do
    curl -sS -o /dev/null -w '%{time_total}\n' -H "X-SLURM-USER-NAME: researcher" \
        -H "X-SLURM-USER-TOKEN: $TOKEN" "http://127.0.0.1:$REST_PORT/slurm/v0.0.42/jobs"
done)
exec_times=$(for _ in $(seq 10); do
    t0=$(now); $SB exec --name "$NAME" -- squeue --json >/dev/null; t1=$(now); secs "$t0" "$t1"; echo
done)

# Prometheus times each scrape itself; wait for one made with the queue full.
sleep 20
targets=$(curl -sS "http://127.0.0.1:$METRICS_PORT/api/v1/targets")
scrapes=$(jq -r '.data.activeTargets[] | "\(.scrapePool) \(.health) \(.lastScrapeDuration)"' <<<"$targets")

sleep "$((soak * 60))"
rss=$(docker exec "$NAME-metrics" sh -c 'grep VmRSS /proc/$(pidof prometheus)/status' | awk '{ printf "%.0f MB", $2 / 1024 }')

printf 'slurmbox REST and metrics bench (Slurm %s, %s CPUs, Docker %s)\n' "$slurm" "$(nproc)" \
    "$(docker version -f '{{.Server.Version}}')"
printf '  warm up, REST and metrics off   median %s s   runs: %s\n' "$(median <<<"$OFF")" "$(oneline <<<"$OFF")"
printf '  warm up, REST and metrics on    median %s s   runs: %s\n' "$(median <<<"$ON")" "$(oneline <<<"$ON")"
printf '  memory: %s-rest %s, %s-metrics %s\n' "$NAME" "$(mib "$NAME-rest")" "$NAME" "$(mib "$NAME-metrics")"
printf '  jobs in the queue: %s\n' "$queued"
printf '  GET /slurm/v0.0.42/jobs         median %s s   runs: %s   (target <= 0.5 s)\n' \
    "$(median <<<"$rest_times")" "$(oneline <<<"$rest_times")"
printf '  squeue --json through exec      median %s s   runs: %s\n' "$(median <<<"$exec_times")" "$(oneline <<<"$exec_times")"
printf '  one scrape, each endpoint (target <= 1 s):\n'
printf '    %s\n' "${scrapes//$'\n'/$'\n    '}"
printf '  Prometheus resident memory after %s min: %s   (target <= 250 MB after 60 min)\n' "$soak" "$rss"
