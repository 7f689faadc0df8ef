#!/usr/bin/env bash
# slurmbox benchmark for the images' size (issue #25): builds the node and controller
# images of each Slurm release (or finds them already built: an image's tag names its
# recipe) and prints each one's size as the engine reports it, against the target.
# Target: a node image <= 430 MB; the controller's (the node image and slurmrestd) too.
#
# Usage: bench/image-size.sh [--slurm 24.11|26.05]   (default: both releases)
# SLURMBOX_BIN=path measures another build of slurmbox's recipes (an earlier release).
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASES="24.11 26.05"
[ "${1:-}" = --slurm ] && RELEASES=$2
# shellcheck source=bench/slurmbox-bin.sh
. bench/slurmbox-bin.sh
TARGET_MB=430

# One line per image: its size in MB as `docker images` counts them (10^6 bytes).
line() {
    local what=$1 tag=$2 bytes mb verdict
    bytes=$(docker image inspect -f '{{.Size}}' "$tag")
    mb=$(( (bytes + 500000) / 1000000 ))
    if [ "$mb" -le "$TARGET_MB" ]; then verdict=met; else verdict="NOT met"; fi
    printf '%-30s %4d MB   (target <= %d MB: %s)   %s\n' "$what" "$mb" "$TARGET_MB" "$verdict" "$tag"
}

for slurm in $RELEASES; do
    node=$($SB image build --quiet --slurm "$slurm")
    line "node image, Slurm $slurm" "$node"
    controller=$($SB image build --quiet --controller --slurm "$slurm")
    line "controller image, Slurm $slurm" "$controller"
done
