#!/bin/bash
# slurmbox-prometheus: the main process of a cluster's metrics container, under tini.
# It runs Debian's Prometheus as its own account on the cluster's NAME-metrics volume,
# scraping what /etc/slurmbox/prometheus.yml (written by slurmbox) names.
#
# Usage: slurmbox-prometheus LISTEN        (ADDRESS:PORT)
# Environment (set by slurmbox):
#   SLURMBOX_METRICS_RETENTION  how long samples are kept ("15d")
set -euo pipefail

listen="${1:?usage: slurmbox-prometheus ADDRESS:PORT}"
data=/var/lib/prometheus/metrics2
# The volume starts out root's; Prometheus writes as its own account.
[ "$(stat -c %U "$data")" = prometheus ] || chown -R prometheus:prometheus "$data"
exec setpriv --reuid=prometheus --regid=prometheus --init-groups -- \
    /usr/bin/prometheus --config.file=/etc/slurmbox/prometheus.yml \
    --storage.tsdb.path="$data" \
    --storage.tsdb.retention.time="${SLURMBOX_METRICS_RETENTION:-15d}" \
    --web.listen-address="$listen"
