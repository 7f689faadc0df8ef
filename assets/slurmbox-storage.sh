#!/bin/bash
# slurmbox-storage: the shared /home slurmbox provides with `[home] shared = "glusterfs"`.
#
# One storage container runs on every host, on the host's network. It holds a brick
# of the cluster's GlusterFS volume (a Docker volume at /srv/brick) and mounts the
# volume over FUSE at /srv/home, a folder of the host that the host's node containers
# see as /home (mount propagation carries the mount to them).
#
# Usage:
#   slurmbox-storage run              the container's main process (under tini)
#   slurmbox-storage converge ADDR..  on the first host: make ADDR.. peers, each with a
#                                     brick of a volume replicated to all of them
#   slurmbox-storage mount            on every host, after converge: mount the volume now
#   slurmbox-storage remove ADDR      on the first host: take ADDR's brick out, forget it
#   slurmbox-storage status [--volume]  key=value lines for `slurmbox status`: whether
#                                     this host has the volume mounted [and the volume's state]
# Environment (set by slurmbox):
#   SLURMBOX_STORAGE_ADDRESS  how the other hosts reach this one
set -euo pipefail

volume=home
brick_dir=/srv/brick/home
mnt=/srv/home
self="${SLURMBOX_STORAGE_ADDRESS:?}"
log() { echo "slurmbox-storage: $*" >&2; }
gl() { gluster --mode=script "$@"; }

# Whether a GlusterFS client is mounted at /srv/home (on top of the host's folder,
# which is itself a mount: never unmount that one).
client_mounted() { grep -q " $mnt [^-]* - fuse.glusterfs " /proc/self/mountinfo; }
# Whether the top mount at /srv/home is the volume and its client answers.
mounted() {
    awk -v m="$mnt" '$5 == m { top = $0 } END { exit !(top ~ / - fuse\.glusterfs /) }' /proc/self/mountinfo &&
        stat -f "$mnt" >/dev/null 2>&1
}
# Unmounts clients at /srv/home (the nodes lose them too, through propagation).
unmount() { while client_mounted; do umount -l "$mnt" || return 0; done; }

# Mounts the volume at /srv/home unless it answers there already, once the first host
# has started it. The main loop and `slurmbox-storage mount` both come here: a lock
# keeps them from mounting it twice over.
mount_volume() {
    exec 9>/run/slurmbox-storage.mount.lock
    flock -w 120 9 || { log "another mount of the volume has not ended after 120 s"; return 1; }
    if ! mounted; then
        unmount
        # The client lives on after mount returns: it must not hold the lock (fd 9).
        if gl volume info "$volume" 2>/dev/null | grep -q '^Status: Started' &&
            mount -t glusterfs -o log-file=/var/log/glusterfs/home-mount.log "localhost:/$volume" "$mnt" 9>&-; then
            log "volume $volume mounted at $mnt (the nodes' /home)"
        fi
    fi
    exec 9>&-
    mounted
}

# The volume's bricks, one "ADDR:/srv/brick/home" per line.
bricks() { gl volume info "$volume" | sed -n 's/^Brick[0-9]*: //p'; }

# Try the command in $1 five times a second for $2 seconds, until it succeeds.
retry() {
    local what="$1" seconds="$2"
    for ((i = 0; i < seconds * 5; i++)); do
        if eval "$what" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    return 1
}

run() {
    mkdir -p "$brick_dir" "$mnt"
    # glusterd's pid files and sockets from before a restart of this container, as a
    # host's reboot clears them: glusterd takes a brick whose old pid now names another
    # process for running, and never starts it again.
    rm -rf /run/gluster
    # A mount left by an earlier run of this container, whose client is gone.
    unmount
    glusterd -N --log-file=- &
    local glusterd=$!
    stop() {
        unmount
        kill -TERM "$glusterd" 2>/dev/null || true
        pkill -TERM glusterfsd 2>/dev/null || true
        exit 0
    }
    trap stop TERM INT
    retry "gl pool list" 60 || { log "glusterd did not start"; exit 1; }
    log "glusterd answers at $self"
    # Mount the volume once the first host has made it (slurmbox asks each host to, see
    # `mount`, as soon as converge is done; this is in case it could not); mount it again
    # whenever the client stops answering (it died, or the volume was stopped).
    while kill -0 "$glusterd" 2>/dev/null; do
        local pause=2
        if ! mounted; then
            # The nodes are waiting: look again soon.
            mount_volume || pause=0.5
        fi
        sleep "$pause" &
        wait $! || true
    done
    log "glusterd exited"
    exit 1
}

converge() {
    local want=("$@") a probes=()
    # All hosts at once: the other hosts' storage containers may still be starting, and
    # glusterd takes one probe at a time (the others are refused and tried again).
    for a in "${want[@]}"; do
        [ "$a" = "$self" ] && continue
        gl pool list | awk 'NR > 1 { print $2 }' | grep -qx "$a" && continue
        {
            retry "gl peer probe $a" 120 || { log "host $a does not answer GlusterFS (port 24007)"; exit 1; }
        } &
        probes+=($!)
    done
    for a in "${probes[@]}"; do wait "$a" || exit 1; done
    # Every peer connected, or volume commands are refused.
    local others=$((${#want[@]} - 1))
    retry "[ \$(gl peer status | grep -c 'Peer in Cluster (Connected)') -ge $others ]" 120 ||
        { gl peer status >&2; log "not every host's glusterd is connected"; exit 1; }
    if ! gl volume info "$volume" >/dev/null 2>&1; then
        local replica=() list=()
        [ "${#want[@]}" -gt 1 ] && replica=(replica "${#want[@]}")
        for a in "${want[@]}"; do list+=("$a:$brick_dir"); done
        # force: the bricks are on the hosts' root file systems (Docker volumes).
        gl volume create "$volume" "${replica[@]}" "${list[@]}" force
        log "created volume $volume on ${want[*]}"
    else
        local have count
        have="$(bricks)"
        count=$(wc -l <<<"$have")
        for a in "${want[@]}"; do
            grep -qx "$a:$brick_dir" <<<"$have" && continue
            count=$((count + 1))
            gl volume add-brick "$volume" replica "$count" "$a:$brick_dir" force
            log "added $a's brick (replica $count)"
            # Copy what is already there onto the new brick now, not file by file later.
            gl volume heal "$volume" full >/dev/null 2>&1 || true
        done
    fi
    gl volume info "$volume" | grep -q '^Status: Started' || gl volume start "$volume"
    # Hosts mount the volume next: a client that finds a brick not yet listening tries
    # it again only seconds later, so wait until every brick is online (a brick of a host
    # that is down never is: then go on without it).
    retry "[ \$(gl volume status $volume detail | grep -c '^Online *: Y') -ge ${#want[@]} ]" 30 ||
        log "not every brick is online: $(gl volume status "$volume" detail | grep -c '^Online *: Y') of ${#want[@]}"
}

# The volume mounted at /srv/home now (slurmbox asks every host once converge is done).
mount_now() {
    retry "gl volume info $volume" 30 || { log "volume $volume is not known on this host"; exit 1; }
    mount_volume || { log "cannot mount volume $volume (see /var/log/glusterfs/home-mount.log)"; exit 1; }
}

remove() {
    local gone="${1:?usage: slurmbox-storage remove ADDR}" count
    if bricks | grep -qx "$gone:$brick_dir"; then
        count=$(bricks | wc -l)
        if [ "$count" -gt 1 ]; then
            gl volume remove-brick "$volume" replica "$((count - 1))" "$gone:$brick_dir" force
            log "removed $gone's brick (replica $((count - 1)))"
        fi
    fi
    if gl pool list | awk 'NR > 1 { print $2 }' | grep -qx "$gone"; then
        gl peer detach "$gone" force
        log "host $gone is no longer a GlusterFS peer"
    fi
}

# What `slurmbox status` shows: whether this host's nodes have the volume, and the
# volume's bricks as GlusterFS sees them (online, files waiting for self-heal, files in
# split-brain).
status() {
    if mounted; then echo "mounted=yes"; else echo "mounted=no"; fi
    [ "${1:-}" = --volume ] || return 0
    gl volume info "$volume" >/dev/null 2>&1 || { echo "volume=none"; return 0; }
    echo "volume=$(gl volume info "$volume" | sed -n 's/^Status: //p')"
    echo "bricks=$(bricks | wc -l)"
    echo "online=$(gl volume status "$volume" detail 2>/dev/null | grep -c '^Online *: Y')"
    gl volume heal "$volume" info summary 2>/dev/null | awk -F: '
        /entries in heal pending/ { heal += $2 }
        /entries in split-brain/ { broken += $2 }
        END { printf "heal_pending=%d\nsplit_brain=%d\n", heal, broken }'
}

case "${1:-}" in
run) run ;;
status) shift && status "$@" ;;
converge) shift && converge "$@" ;;
mount) mount_now ;;
remove) shift && remove "$@" ;;
*)
    echo "usage: slurmbox-storage run | converge ADDR... | mount | remove ADDR | status [--volume]" >&2
    exit 2
    ;;
esac
