#!/bin/bash
# slurmbox-storage: the GlusterFS volumes slurmbox runs: the shared /home (`[home]
# shared = "glusterfs"`) and the controllers' state (a backup controller on another
# host without `[controller] state_path`).
#
# One storage container runs on every host that holds a brick, on the host's network.
# Each volume NAME has its brick at /srv/brick/NAME (a Docker volume) and is mounted over
# FUSE at /srv/NAME, a folder of the host that the host's node containers see (as /home,
# or as slurmctld's StateSaveLocation): mount propagation carries the mount to them.
#
# Usage:
#   slurmbox-storage run              the container's main process (under tini)
#   slurmbox-storage converge VOLUME ADDR..  on the first of ADDR..: make them peers,
#                                     each with a brick of VOLUME replicated to all of them
#   slurmbox-storage mount VOLUME     after converge: mount the volume now
#   slurmbox-storage remove ADDR      take ADDR's bricks out of every volume, forget it
#   slurmbox-storage status [--volume]  key=value lines for `slurmbox status`: whether
#                                     this host has /home mounted [and the volume's state]
# Environment (set by slurmbox):
#   SLURMBOX_STORAGE_ADDRESS  how the other hosts reach this one
#   SLURMBOX_STORAGE_MOUNTS   the volumes this host mounts, e.g. "home ctld" (unset: home)
set -euo pipefail

volume=home
self="${SLURMBOX_STORAGE_ADDRESS:?}"
mounts="${SLURMBOX_STORAGE_MOUNTS-$volume}"
log() { echo "slurmbox-storage: $*" >&2; }
gl() { gluster --mode=script "$@"; }
brick_dir() { echo "/srv/brick/$1"; }
mnt() { echo "/srv/$1"; }

# Whether a GlusterFS client is mounted at /srv/VOLUME (on top of the host's folder,
# which is itself a mount: never unmount that one).
client_mounted() { grep -q " $(mnt "$1") [^-]* - fuse.glusterfs " /proc/self/mountinfo; }
# Whether the top mount at /srv/VOLUME is the volume and its client runs. A client that
# reaches no brick (this host cut off) stays: it finds them again by itself, while a
# mount made again would leave the folder under it bare, to the host's containers too,
# in between.
mounted() {
    awk -v m="$(mnt "$1")" '$5 == m { top = $0 } END { exit !(top ~ / - fuse\.glusterfs /) }' /proc/self/mountinfo &&
        { stat -f "$(mnt "$1")" >/dev/null 2>&1 || client_runs "$1"; }
}
# Whether the GlusterFS client of VOLUME's mount runs.
client_runs() { pgrep -f -- "--volfile-id=/?$1( .*)? $(mnt "$1")\$" >/dev/null; }
# Unmounts clients at /srv/VOLUME (the nodes lose them too, through propagation).
unmount() { while client_mounted "$1"; do umount -l "$(mnt "$1")" || return 0; done; }

# Mounts VOLUME at /srv/VOLUME unless it answers there already, once the first host
# has started it. The main loop and `slurmbox-storage mount` both come here: a lock
# keeps them from mounting it twice over.
mount_volume() {
    local v=$1
    exec 9>"/run/slurmbox-storage.$v.lock"
    flock -w 120 9 || { log "another mount of volume $v has not ended after 120 s"; return 1; }
    if ! mounted "$v"; then
        unmount "$v"
        # The client lives on after mount returns: it must not hold the lock (fd 9).
        if gl volume info "$v" 2>/dev/null | grep -q '^Status: Started' &&
            mount -t glusterfs -o "log-file=/var/log/glusterfs/$v-mount.log" "localhost:/$v" "$(mnt "$v")" 9>&-; then
            log "volume $v mounted at $(mnt "$v") (for this host's containers)"
        fi
    fi
    exec 9>&-
    mounted "$v"
}

# VOLUME's bricks, one "ADDR:/srv/brick/VOLUME" per line.
bricks() { gl volume info "$1" | sed -n 's/^Brick[0-9]*: //p'; }

# Try the command in $1 five times a second for $2 seconds, until it succeeds.
retry() {
    local what="$1" seconds="$2"
    for ((i = 0; i < seconds * 5; i++)); do
        if eval "$what" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    return 1
}

# On the container's stop: the volumes unmounted, glusterd and the bricks ended.
stop() {
    local v
    for v in $mounts; do unmount "$v"; done
    kill -TERM "$glusterd" 2>/dev/null || true
    pkill -TERM glusterfsd 2>/dev/null || true
    exit 0
}

glusterd=
run() {
    local v
    for v in $mounts; do
        mkdir -p "$(brick_dir "$v")" "$(mnt "$v")"
        # A mount left by an earlier run of this container, whose client is gone.
        unmount "$v"
    done
    # glusterd's pid files and sockets from before a restart of this container, as a
    # host's reboot clears them: glusterd takes a brick whose old pid now names another
    # process for running, and never starts it again.
    rm -rf /run/gluster
    glusterd -N --log-file=- &
    glusterd=$!
    trap stop TERM INT
    retry "gl pool list" 60 || { log "glusterd did not start"; exit 1; }
    log "glusterd answers at $self"
    # Mount the volumes once they are made (slurmbox asks each host to, see `mount`, as
    # soon as converge is done; this is in case it could not); mount one again whenever
    # its client stops answering (it died, or the volume was stopped).
    while kill -0 "$glusterd" 2>/dev/null; do
        local pause=2
        for v in $mounts; do
            if ! mounted "$v"; then
                # The containers are waiting: look again soon.
                mount_volume "$v" || pause=0.5
            fi
        done
        sleep "$pause" &
        wait $! || true
    done
    log "glusterd exited"
    exit 1
}

converge() {
    local v="${1:?usage: slurmbox-storage converge VOLUME ADDR...}"
    shift
    local want=("$@") a probes=() brick
    brick=$(brick_dir "$v")
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
    if ! gl volume info "$v" >/dev/null 2>&1; then
        local replica=() list=()
        [ "${#want[@]}" -gt 1 ] && replica=(replica "${#want[@]}")
        for a in "${want[@]}"; do list+=("$a:$brick"); done
        # force: the bricks are on the hosts' root file systems (Docker volumes); and a
        # replica of 2 asks for a confirmation that --mode=script answers.
        gl volume create "$v" "${replica[@]}" "${list[@]}" force
        log "created volume $v on ${want[*]}"
    else
        local have count
        have="$(bricks "$v")"
        count=$(wc -l <<<"$have")
        for a in "${want[@]}"; do
            grep -qx "$a:$brick" <<<"$have" && continue
            count=$((count + 1))
            gl volume add-brick "$v" replica "$count" "$a:$brick" force
            log "added $a's brick to $v (replica $count)"
            # Copy what is already there onto the new brick now, not file by file later.
            gl volume heal "$v" full >/dev/null 2>&1 || true
        done
    fi
    # Every time, not only when the volume is made: a volume made by an earlier
    # slurmbox gets what this one sets.
    [ "$v" = "$volume" ] || tune_state "$v" "$(bricks "$v" | wc -l)"
    gl volume info "$v" | grep -q '^Status: Started' || gl volume start "$v"
    # Hosts mount the volume next: a client that finds a brick not yet listening tries
    # it again only seconds later, so wait until every brick is online (a brick of a host
    # that is down never is: then go on without it).
    retry "[ \$(gl volume status $v detail | grep -c '^Online *: Y') -ge ${#want[@]} ]" 30 ||
        log "not every brick of $v is online: $(gl volume status "$v" detail | grep -c '^Online *: Y') of ${#want[@]}"
}

# The controllers' state volume answers within seconds when a host is lost: a backup
# controller takes over within 30 s.
# - Clients: GlusterFS's client would hold every file operation for 42 s
#   (network.ping-timeout) waiting for the lost brick.
# - Bricks: a lost host's client may hold a lock (a controller writing its state when
#   the host was cut off), and the other hosts' bricks keep it until they find that
#   client gone: about 40 s by default, and every write to the state folder waits for
#   it (the backup in charge stopped answering). Keepalives every 2 s and 10 s without
#   an answer find it gone in about 10 s, before the backup takes charge.
# - With two bricks the one left must take writes alone (GlusterFS's client quorum would
#   stop them when the first brick is lost); with three, two of them agree.
tune_state() {
    local v=$1 bricks=$2 have kv
    local want=(network.ping-timeout=5 server.keepalive-time=2 server.keepalive-interval=2
        server.keepalive-count=4 server.tcp-user-timeout=10)
    if [ "$bricks" -eq 2 ]; then
        want+=(cluster.quorum-type=fixed cluster.quorum-count=1)
    else
        want+=(cluster.quorum-type=auto)
    fi
    # Only what differs is set (read once): every change makes each client and brick
    # load the volume's description again.
    have=$(gl volume get "$v" all 2>/dev/null | awk 'NR > 2 { print $1 "=" $2 }')
    for kv in "${want[@]}"; do
        grep -qxF "$kv" <<<"$have" || gl volume set "$v" "${kv%%=*}" "${kv#*=}"
    done
}

# VOLUME mounted at /srv/VOLUME now (slurmbox asks every host once converge is done).
# The controllers' state gets a mark the folder under the mount never has: a
# controller starts only where it sees it (slurmbox-init).
mount_now() {
    local v="${1:?usage: slurmbox-storage mount VOLUME}"
    retry "gl volume info $v" 30 || { log "volume $v is not known on this host"; exit 1; }
    mount_volume "$v" || { log "cannot mount volume $v (see /var/log/glusterfs/$v-mount.log)"; exit 1; }
    if [ "$v" != "$volume" ] && ! retry "touch $(mnt "$v")/.slurmbox-volume" 30; then
        log "volume $v takes no writes (see /var/log/glusterfs/$v-mount.log)"
        exit 1
    fi
}

remove() {
    local gone="${1:?usage: slurmbox-storage remove ADDR}" count v
    for v in $(gl volume list 2>/dev/null); do
        if bricks "$v" | grep -qx "$gone:$(brick_dir "$v")"; then
            count=$(bricks "$v" | wc -l)
            if [ "$count" -gt 1 ]; then
                gl volume remove-brick "$v" replica "$((count - 1))" "$gone:$(brick_dir "$v")" force
                log "removed $gone's brick from $v (replica $((count - 1)))"
                [ "$v" = "$volume" ] || tune_state "$v" "$((count - 1))"
            fi
        fi
    done
    if gl pool list | awk 'NR > 1 { print $2 }' | grep -qx "$gone"; then
        gl peer detach "$gone" force
        log "host $gone is no longer a GlusterFS peer"
    fi
}

# What `slurmbox status` shows: whether this host's nodes have /home, and the volume's
# bricks as GlusterFS sees them (online, files waiting for self-heal, files in
# split-brain).
status() {
    # Nothing to say where this host holds no /home (only the controllers' state).
    case " $mounts " in *" $volume "*) ;; *) return 0 ;; esac
    if mounted "$volume"; then echo "mounted=yes"; else echo "mounted=no"; fi
    [ "${1:-}" = --volume ] || return 0
    gl volume info "$volume" >/dev/null 2>&1 || { echo "volume=none"; return 0; }
    echo "volume=$(gl volume info "$volume" | sed -n 's/^Status: //p')"
    echo "bricks=$(bricks "$volume" | wc -l)"
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
mount) shift && mount_now "$@" ;;
remove) shift && remove "$@" ;;
*)
    echo "usage: slurmbox-storage run | converge VOLUME ADDR... | mount VOLUME | remove ADDR | status [--volume]" >&2
    exit 2
    ;;
esac
