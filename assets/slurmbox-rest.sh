#!/bin/bash
# slurmbox-rest: the main process of a cluster's REST container, under tini. It runs
# Debian's slurmrestd as its own unprivileged account (slurmrestd, made in the
# controller's image: neither root nor Slurm's account, nor nobody, which Slurm 26.05
# refuses), taking JWT tokens only: each request carries its user's token
# (X-SLURM-USER-NAME / X-SLURM-USER-TOKEN), which slurmctld and slurmdbd check. This
# container holds no munge key and no JWT key.
#
# Usage: slurmbox-rest
# Environment (set by slurmbox):
#   SLURMBOX_REST_LISTEN  the address and port slurmrestd listens on ("0.0.0.0:6820")
set -euo pipefail

# SLURM_JWT=daemon: slurmrestd authenticates every request by its token alone.
export SLURM_JWT=daemon
# slurmrestd would unshare its System V IPC and file table before it drops to its
# account; Docker's seccomp profile refuses unshare(2) without CAP_SYS_ADMIN, and the
# container already has an IPC namespace of its own and no process to share
# descriptors with.
export SLURMRESTD_SECURITY=disable_unshare_sysv,disable_unshare_files
# slurmrestd answers each request on one of its threads, and glibc gives every thread
# an arena of its own that keeps what a large answer freed: measured with 1,000 jobs
# queued, 30 requests for /jobs left it 2.2 GB resident and growing; one arena keeps it
# at 164 MB, answering as fast.
export MALLOC_ARENA_MAX=1

# Every OpenAPI plugin Debian ships, except slurmdbd's where the cluster has no
# accounting: slurmrestd stops at once when it cannot load that one.
plugins=()
if ! grep -qx 'AccountingStorageType=accounting_storage/slurmdbd' /etc/slurm/slurm.conf; then
    for so in /usr/lib/*/slurm-wlm/openapi_*.so; do
        name=$(basename "$so" .so)
        [ "$name" = openapi_slurmdbd ] || plugins+=("openapi/${name#openapi_}")
    done
    plugins=(-s "$(IFS=, && echo "${plugins[*]}")")
fi
# Beside it, the controllers' last known addresses, so that requests do not wait on
# lookups of a controller that is down (slurmbox-init's words on it).
/usr/local/sbin/slurmbox-init addresses &
exec /usr/sbin/slurmrestd -a rest_auth/jwt "${plugins[@]}" -u slurmrestd -g slurmrestd \
    "${SLURMBOX_REST_LISTEN:-0.0.0.0:6820}"
