#!/bin/sh
# web-login: prints a link that logs you into this cluster's dashboard. The link holds a
# Slurm token (scontrol token) naming you: whoever opens it is you there until it
# expires, so open it yourself and share it with no one. "web-login 2h" for a token
# that lasts 2 hours (default 8h); "Log out" in the dashboard forgets it.
set -eu
span=${1:-8h}
number=${span%[smh]}
case "$number" in
'' | *[!0-9]*) echo "web-login: write the token's lifespan as 30m, 8h or 3600s, not \"$span\"" >&2; exit 2 ;;
esac
case "$span" in
*h) seconds=$((number * 3600)) ;;
*m) seconds=$((number * 60)) ;;
*) seconds=$number ;;
esac
url=$(cat /etc/slurmbox/web-url)
token=$(scontrol token lifespan="$seconds")
echo "${url}/login#token=${token#SLURM_JWT=}"
