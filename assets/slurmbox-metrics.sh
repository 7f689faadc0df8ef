#!/bin/bash
# slurmbox-metrics: starts slurmbox-exporter beside slurmctld in the controller's
# container (started again should it stop), then runs the rest of its command line
# (slurmbox-init controller). The exporter answers OpenMetrics on
# SLURMBOX_EXPORTER_PORT, built from Slurm's JSON output, for Prometheus.
#
# Usage: slurmbox-metrics COMMAND [ARG...]
set -euo pipefail

# Started twice removed, so that the loop is no child of the command: slurmbox-init
# waits for its own children when it stops, and this loop never ends by itself.
(
    (
        while true; do
            runuser -u slurm -- python3 /usr/local/lib/slurmbox/slurmbox-exporter.py \
                --port "${SLURMBOX_EXPORTER_PORT:-6821}" || true
            echo "slurmbox-metrics: the exporter stopped; starting it again in 5 s" >&2
            sleep 5
        done
    ) &
)
exec "$@"
