# Sourced by the benchmarks (from the checkout's root): sets SB to the slurmbox they
# run: $SLURMBOX_BIN where it is set (another build, e.g. an earlier release, to compare
# two in the same conditions), else this checkout built for release.
# shellcheck shell=bash
if [ -n "${SLURMBOX_BIN:-}" ]; then
    SB=$SLURMBOX_BIN
else
    cargo build --release --quiet
    SB=./target/release/slurmbox
fi
export SB
