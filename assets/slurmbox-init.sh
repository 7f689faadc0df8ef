#!/bin/bash
# slurmbox-init: the process tini (PID 1) starts in every slurmbox container.
#
# It prepares the node (accounts, munge key, state directories), starts munged and
# the role's Slurm daemon in the foreground, forwards SIGTERM/SIGINT to them, and
# exits as soon as either daemon dies, so that Docker's restart policy and
# `slurmbox status` see the failure instead of a container that is "up" with
# nothing running in it.
#
# Usage: slurmbox-init controller|compute|login|dbd
#        slurmbox-init health controller|compute   (Docker's health check: exit 0 if the
#        node's Slurm daemon answers)
#        slurmbox-init homes NAME:UID:GID ...      (on the login node: make these users'
#        homes on the shared /home, leaving existing ones as they are)
#        slurmbox-init addresses                   (keep the controllers' last known
#        addresses in /etc/hosts, as long as it runs: beside slurmrestd)
# Environment (set by slurmbox):
#   SLURMBOX_CONTROLLER  host names (or addresses) of the controllers, comma-separated,
#                        the primary first (compute, login)
#   SLURMBOX_BACKUP      "1" on a backup controller: it waits for the primary's munge key
#   SLURMBOX_LDAP        "1" where users come from LDAP too: nslcd runs beside the daemons
#   SLURMBOX_NODE        this node's Slurm name
#   SLURMBOX_NODE_CONF   what a compute node registers with ("CPUs=4 RealMemory=...")
#   SLURMBOX_SHARED_HOME "glusterfs" when /home is the volume the host's storage
#                        container mounts (compute and login nodes wait for it)
#   SLURMBOX_SHARED_STATE "glusterfs" on controllers whose state is the volume the
#                        host's storage container mounts (they wait for it)
#   SLURMBOX_CGROUP_WRITABLE "1" on compute nodes that enforce limits: the container's
#                        own cgroup mounts are made writable for slurmd
set -euo pipefail

role="${1:?usage: slurmbox-init controller|compute|login|dbd}"
log() { echo "slurmbox-init[$role]: $*" >&2; }

# Whether this node's Slurm daemon answers, not only lives: slurmctld answers a ping
# (its own: with a backup, `scontrol ping` asks every controller, and one that is gone
# takes seconds to fail to resolve, so the ping reads a copy of slurm.conf that names
# this one alone), slurmd reports on itself. (A hung daemon keeps its process; only
# asking tells.)
# Whether slurm.conf names more than one controller (a backup).
has_backup() { grep -c '^SlurmctldHost=' /etc/slurm/slurm.conf 2>/dev/null | grep -qv '^1$'; }
answers() {
    local out self=/run/slurmbox-ping.conf conf=/etc/slurm/slurm.conf
    case "$1" in
    controller)
        if has_backup; then
            # (Each asker writes its own copy: the engine's health check and the
            # watchdog ask at the same time.)
            { grep -v '^SlurmctldHost=' "$conf"; grep -E "^SlurmctldHost=${SLURMBOX_NODE:-}(\(|$)" "$conf"; } >"$self.$BASHPID" &&
                mv "$self.$BASHPID" "$self"
            conf=$self
        fi
        out=$(SLURM_CONF=$conf timeout 5 scontrol ping 2>/dev/null || true)
        [[ $out == *" is UP"* ]]
        ;;
    compute) timeout 5 scontrol show slurmd >/dev/null 2>&1 ;;
    *) true ;;
    esac
}

# A controller that restarted before it saved its state (slurmctld writes it every few
# minutes) no longer knows the dynamic nodes that kept running, and slurmd registers
# only when it starts: such a node must start again. A controller that does not
# answer says nothing about this node.
known_to_controller() {
    local out
    out=$(timeout 5 scontrol show node "${SLURMBOX_NODE:-$(hostname)}" 2>&1) && return 0
    case "$out" in *" not found"*) return 1 ;; esac
}
if [ "$role" = health ]; then
    answers "${2:?usage: slurmbox-init health controller|compute}"
    exit
fi

# On a cluster's own network (one host) the controllers' names are Docker's, which it
# forgets while a container is down; Debian's Slurm then looks a name up ten times, a
# second apart, before it gives up on it: a backup spent 11 s on each look at a primary
# that was gone before it could take charge, and every sbatch or squeue 10-20 s while one
# controller was down. So each controller's address, once learned, stays in /etc/hosts
# (marked) until DNS gives another: a message to a controller that is down fails at once.
# Only addresses learned in this container's life are kept (one from before could now be
# another container's, even this one's).
keep_addresses() {
    local name addr changed mark='# slurmbox: a controller'"'"'s last known address'
    local -A known=()
    while true; do
        changed=
        for name in "$@"; do
            addr=$(getent -s dns ahostsv4 "$name" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
            if [ -z "$addr" ] || [ "${known[$name]:-}" = "$addr" ]; then continue; fi
            known[$name]=$addr
            changed=1
        done
        if [ -n "$changed" ]; then
            {
                grep -vF "$mark" /etc/hosts || true
                for name in "${!known[@]}"; do printf '%s\t%s %s\n' "${known[$name]}" "$name" "$mark"; done
            } >/run/slurmbox-hosts
            # (Written in place: Docker bind-mounts /etc/hosts.)
            cat /run/slurmbox-hosts >/etc/hosts
        fi
        sleep 1
    done
}
# The controllers' names (not addresses) this container reaches them by.
controller_names() {
    local name
    if [ -n "${SLURMBOX_CONTROLLER:-}" ]; then
        for name in ${SLURMBOX_CONTROLLER//,/ }; do [[ $name =~ ^[0-9.]+$ ]] || echo "$name"; done
    else
        sed -n 's/^SlurmctldHost=\([^(]*\)$/\1/p' /etc/slurm/slurm.conf 2>/dev/null || true
    fi
}
# `slurmbox-init addresses`: only that, for as long as it runs (beside slurmrestd).
if [ "$role" = addresses ]; then
    mapfile -t names < <(controller_names)
    [ "${#names[@]}" -gt 1 ] || exit 0
    keep_addresses "${names[@]}"
fi

# Try the command in $1 up to $2 times, 50 ms apart, until it succeeds.
wait_for() {
    local what="$1" tries="$2"
    for ((i = 0; i < tries; i++)); do
        if eval "$what" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Jobs and the users' homes belong on the shared volume, never in the folder under
# it: wait until the host's storage container has mounted it. (The last mount at /home
# is the top one; the folder under it may be FUSE too, e.g. on fuse-overlayfs.)
shared_home_mounted() {
    awk '$5 == "/home" { top = $0 } END { exit !(top ~ / - fuse\.glusterfs /) }' /proc/self/mountinfo &&
        stat -f /home >/dev/null
}

# The accounts themselves come from the host's accounts volume (libnss-extrausers, or
# LDAP through nslcd), which slurmbox writes: nothing to create here. A home is made
# once, from /etc/skel, owned by its user and readable by nobody else; it appears
# whole or not at all.
if [ "$role" = homes ]; then
    shift
    if [ "${SLURMBOX_SHARED_HOME:-}" = glusterfs ]; then
        wait_for shared_home_mounted 6000 || { log "no shared /home after 300 s"; exit 1; }
    fi
    for entry in "$@"; do
        IFS=: read -r name uid gid <<<"$entry"
        [ -d "/home/$name" ] && continue
        rm -rf "/home/.$name.new"
        mkdir -m 0700 "/home/.$name.new"
        cp -rT /etc/skel "/home/.$name.new"
        chown -R "$uid:$gid" "/home/.$name.new"
        chmod 0700 "/home/.$name.new"
        mv -T "/home/.$name.new" "/home/$name"
    done
    exit
fi

if [ "${SLURMBOX_SHARED_HOME:-}" = glusterfs ] && [ "$role" != controller ]; then
    log "waiting for the shared /home (GlusterFS, mounted by this host's storage container)"
    wait_for shared_home_mounted 6000 ||
        { log "no shared /home after 300 s: see the logs of this host's storage container"; exit 1; }
    log "the shared /home is there"
fi

# A controller whose state is the GlusterFS volume of its host's storage container
# (a backup on another host, no [controller] state_path) starts on it, never on the
# folder under it, and only while the volume takes its writes: GlusterFS refuses them
# on a host cut off from the other hosts with the state's bricks (two of three must
# agree), where the other controller may be in charge (see `fence`).
state_mounted() {
    awk '$5 == "/var/lib/slurmbox/shared/ctld" { top = $0 } END { exit !(top ~ / - fuse\.glusterfs /) }' /proc/self/mountinfo &&
        stat -f /var/lib/slurmbox/shared/ctld >/dev/null
}
# (The volume has the mark slurmbox-storage put there; the folder under it never has.)
state_writable() {
    state_mounted && [ -e /var/spool/slurmctld/.slurmbox-volume ] &&
        timeout 8 touch "/var/spool/slurmctld/.slurmbox-writable-$(hostname)"
}
if [ "${SLURMBOX_SHARED_STATE:-}" = glusterfs ] && [ "$role" = controller ]; then
    # The volume is in the host's folder of the cluster (the container mounts the
    # folder, which is always there): StateSaveLocation leads to it.
    if [ ! -L /var/spool/slurmctld ]; then
        rmdir /var/spool/slurmctld 2>/dev/null || rm -rf /var/spool/slurmctld
        ln -s /var/lib/slurmbox/shared/ctld /var/spool/slurmctld
    fi
    log "waiting for the shared state (GlusterFS, mounted by this host's storage container)"
    # As long as it takes: a host cut off gets it back when it is back.
    until wait_for state_writable 1200; do
        log "the shared state is not there or takes no writes (yet): see the logs of this host's storage container"
    done
    log "the shared state is there"
fi

# The munge key is per cluster and lives only in the cluster's munge volume. The
# controller creates it from the kernel's RNG on first start; the others (a backup
# controller too) wait for it.
key=/etc/munge/munge.key
if [ "$role" = controller ] && [ -z "${SLURMBOX_BACKUP:-}" ]; then
    if [ ! -s "$key" ]; then
        log "creating this cluster's munge key"
        (umask 077 && dd if=/dev/urandom of="$key.tmp" bs=1024 count=1 status=none)
        chown munge:munge "$key.tmp"
        chmod 0400 "$key.tmp"
        mv "$key.tmp" "$key"
    fi
    # A key made under an image whose munge account had another UID (before slurmbox
    # pinned it) is handed to this one's, with its folder.
    munge_uid=$(id -u munge)
    [ "$(stat -c %u /etc/munge)" = "$munge_uid" ] || chown munge:munge /etc/munge
    if [ "$(stat -c %u "$key")" != "$munge_uid" ]; then
        log "handing the munge key to this image's munge account (UID $munge_uid)"
        chown munge:munge "$key"
        chmod 0400 "$key"
    fi
else
    wait_for "[ -s $key ]" 1200 || { log "no munge key after 60 s (is the controller running?)"; exit 1; }
    # The copy slurmbox writes for nodes on other hosts than the controller's arrives
    # owned by root; nodes beside the controller read its own (read-only, munge's).
    if [ "$(stat -c %U "$key")" != munge ]; then
        chown munge:munge "$key"
        chmod 0400 "$key"
    fi
    if [ -w /etc/munge ] && [ "$(stat -c %U /etc/munge)" != munge ]; then
        chown munge:munge /etc/munge
    fi
fi

# Limits: the container runs in a private cgroup namespace, so the cgroup mounts Docker
# made (read-only) are rooted at the container's own cgroup, not the host's. slurmd
# makes its job cgroups below them, which needs them writable: a bind remount changes
# only this container's view (SYS_ADMIN). On cgroup v2 slurmd then moves the
# processes out of the namespace's root and enables the controllers (cgroup.conf).
if [ "${SLURMBOX_CGROUP_WRITABLE:-}" = 1 ]; then
    while read -r _ mountpoint fstype _; do
        case "$fstype" in cgroup | cgroup2) ;; *) continue ;; esac
        mount -o remount,bind,rw "$mountpoint" ||
            { log "cannot make $mountpoint writable, so this host cannot enforce limits: set compute.limits = false in the spec to run without them (the README's Limits section says what a host needs)"; exit 1; }
    done < <(awk '$2 ~ "^/sys/fs/cgroup" { print }' /proc/self/mounts)
fi

pids=()
# Users from LDAP: nslcd answers the NSS lookups of every program here (libnss-ldapd)
# from the directory /etc/nslcd.conf names; slurmbox wrote that file, root's alone (it
# holds the bind password).
if [ "${SLURMBOX_LDAP:-}" = 1 ]; then
    install -d -o nslcd -g nslcd -m 0755 /run/nslcd
    /usr/sbin/nslcd --nofork &
    pids+=($!)
fi

install -d -o munge -g munge -m 0755 /run/munge
# munged would list every group at start for a feature Slurm does not use (credentials
# restricted to a group): with groups from a directory that is slow, or not there yet.
# (setpriv, not runuser, to become munge: it runs munged in its place, which stops at
# once when told; runuser waits 2 s after passing SIGTERM on, at every container stop.)
setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged --foreground --group-update-time=-1 &
munged=$!
pids+=("$munged")
# (Up to 30 s: munged looks up its host's name, which takes long where DNS is not there.)
wait_for "[ -S /run/munge/munge.socket.2 ]" 600 || { log "munged did not start"; exit 1; }

controller="${SLURMBOX_CONTROLLER:-controller}"
# Whether one of the controllers listens. The probe connects in a subshell, which closes
# the connection as it exits. (A probe that opened it in this shell would hold it open
# for the node's lifetime, inherited by slurmd and sackd: slurmctld 24.11.5 waits for
# such an idle connection forever when `scontrol reconfigure` quiesces its
# connections, and hangs.)
controller_listens() {
    local c
    for c in ${controller//,/ }; do
        (exec 3<>"/dev/tcp/$c/6817") && return 0
    done
    return 1
}
started=$(date +%s)
case "$role" in
controller)
    state=/var/spool/slurmctld
    install -d -o slurm -g slurm -m 0700 "$state"
    chown slurm:slurm "$state"
    # `slurmbox restore` leaves a backup's state here: it takes the place of the
    # volume's before slurmctld reads it.
    restore=/var/lib/slurmbox/restore/slurmctld-state.tar.gz
    if [ -s "$restore" ]; then
        log "putting the controller state of a backup in place"
        find "$state" -mindepth 1 -delete
        tar -C "$state" --no-same-owner -xzf "$restore"
        chown -R slurm:slurm "$state"
        rm -f "$restore"
    fi
    # slurmctld saves its state when it stops, and while it runs at most every 5 s: one
    # killed outright may come back without the last seconds' changes (a job it had
    # started is pending again). This marker, removed on a clean stop, tells; each
    # controller has its own (a backup shares the folder).
    marker="$state/slurmbox-running${SLURMBOX_BACKUP:+-backup}"
    if [ -e "$marker" ]; then
        log "the controller did not stop cleanly last time: Slurm may have lost the changes of its last seconds"
        date -u +%Y-%m-%dT%H:%M:%SZ >"$state/slurmbox-unclean-start"
        unclean=1
    else
        rm -f "$state/slurmbox-unclean-start"
    fi
    touch "$marker"
    # slurmctld asks slurmdbd for the associations as it starts and, when slurmdbd does
    # not answer yet (both start together), tries again only 2 s later: wait (15 s at
    # most; slurmctld runs without it) until slurmdbd listens.
    dbd=$(sed -n 's/^AccountingStorageHost=//p' /etc/slurm/slurm.conf)
    if [ -n "$dbd" ] && ! wait_for "(exec 3<>/dev/tcp/$dbd/6819)" 300; then
        log "slurmdbd ($dbd:6819) does not answer yet; slurmctld starts without it"
    fi
    # A backup's slurmctld accepts connections but answers none until the primary's
    # heartbeat file is in the state folder, while the primary, as it starts, asks it
    # to hand over and waits 30 s for the answer before it writes that file. So the
    # backup starts once the file is there (on the first start, after the primary).
    if [ -n "${SLURMBOX_BACKUP:-}" ] && ! wait_for "[ -e $state/heartbeat ]" 2400; then
        log "no heartbeat from the primary in $state after 120 s; slurmctld starts and waits for it"
    fi
    ctld_started=$(date +%s)
    /usr/sbin/slurmctld -D &
    ;;
compute | login)
    # Configless: the node fetches slurm.conf from a controller, so wait until one listens.
    wait_for controller_listens 2400 || { log "controller $controller:6817 unreachable after 120 s"; exit 1; }
    if [ "$role" = compute ]; then
        # A dynamic node: it registers itself with the resources it declares.
        /usr/sbin/slurmd -D -Z --conf "${SLURMBOX_NODE_CONF:?}" --conf-server "$controller" \
            -N "${SLURMBOX_NODE:-$(hostname)}" &
    elif [ -s /etc/slurm/slurm.conf ]; then
        # On a host's network beside a compute node, sackd would take slurmd's port
        # (6818). Such a login node is given its own copy of slurm.conf instead and runs
        # no daemon but munged.
        log "client commands read /etc/slurm/slurm.conf"
    else
        # sackd keeps the fetched files in /run/slurm/conf, where client commands look.
        install -d -o slurm -g slurm -m 0755 /run/slurm
        setpriv --reuid=slurm --regid=slurm --init-groups -- /usr/sbin/sackd -D --conf-server "$controller" &
    fi
    ;;
dbd)
    # slurmdbd's settings, with the database password from the secret volume the
    # database container made it in: slurm's alone, written anew at each start.
    secret=/var/lib/slurmbox/secret/db-password
    wait_for "[ -s $secret ] && [ -e /var/lib/slurmbox/secret/db-ready ]" 2400 ||
        { log "the database is not ready after 120 s: see the db container's log"; exit 1; }
    (
        umask 077
        cat /etc/slurm/slurmdbd.conf.template
        printf 'StoragePass=%s\n' "$(cat "$secret")"
    ) >/etc/slurm/slurmdbd.conf
    chown slurm:slurm /etc/slurm/slurmdbd.conf
    chmod 0600 /etc/slurm/slurmdbd.conf
    /usr/sbin/slurmdbd -D &
    ;;
*)
    log "unknown role '$role'"
    exit 2
    ;;
esac
[ "$!" = "$munged" ] || pids+=($!)

# The login node's sshd, for users who log in with their keys. Its host keys live in
# the login node's own volume: made once, they outlive the container.
if [ "$role" = login ] && [ -s /etc/ssh/sshd_config.d/slurmbox.conf ]; then
    keys=/var/lib/slurmbox/ssh
    install -d -m 0700 "$keys"
    for kind in ed25519 rsa; do
        [ -s "$keys/ssh_host_${kind}_key" ] && continue
        log "making the login node's $kind host key"
        rm -f "$keys/.new_key" "$keys/.new_key.pub"
        ssh-keygen -q -t "$kind" -N '' -C "login" -f "$keys/.new_key"
        mv "$keys/.new_key.pub" "$keys/ssh_host_${kind}_key.pub"
        mv "$keys/.new_key" "$keys/ssh_host_${kind}_key"
    done
    install -d -m 0755 /run/sshd
    /usr/sbin/sshd -t -f /etc/ssh/sshd_config || { log "sshd refuses its settings (above)"; exit 1; }
    /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config &
    pids+=($!)
fi

# A daemon that lives but no longer answers is killed, so that this script exits and
# Docker restarts the node, as it does for a daemon that died; so is a slurmd the
# controller has forgotten. Armed once the daemon first answers; it acts after six
# checks in a row, 5 s apart, went unanswered. (Only this asks the controller: the
# engine's more frequent health check stays on the node.)
in_service() {
    answers "$role" && { [ "$role" != compute ] || known_to_controller; }
}
# Whether the controller marked this node down for not responding although it answers
# now: its host was cut off the network and is back. Slurm itself asks such nodes to
# register again only every few minutes; slurmd does at once when told to read its
# configuration again (SIGHUP), and the node returns to service. (Not a node that is
# only not responding yet, as every node is for a moment after slurmctld starts.)
lost_by_controller() {
    local out
    out=$(timeout 5 scontrol show node "${SLURMBOX_NODE:-$(hostname)}" 2>/dev/null) || return 1
    [[ $out == *State=DOWN*NOT_RESPONDING* ]]
}
watchdog() {
    local daemon="$1" fails=0
    until in_service; do sleep 1; done
    while sleep 5; do
        if [ "$role" = compute ] && lost_by_controller; then
            log "the controller holds this node as not responding: registering again"
            kill -HUP "$daemon" 2>/dev/null || true
        fi
        if in_service; then
            fails=0
            continue
        fi
        fails=$((fails + 1))
        log "the Slurm daemon did not answer (check $fails of 6)"
        if [ "$fails" -ge 6 ]; then
            log "the Slurm daemon has not answered for 30 s: killing it so that the node restarts"
            kill -KILL "$daemon" 2>/dev/null || true
            return
        fi
    done
}
watchdog_pid=""
daemon="${pids[-1]}"

# The controllers' last known addresses (see keep_addresses), not for slurmdbd.
addresses_pid=
if [ "$role" != dbd ]; then
    mapfile -t names < <(controller_names)
    if [ "${#names[@]}" -gt 1 ]; then
        keep_addresses "${names[@]}" &
        addresses_pid=$!
    fi
fi

if [ "$role" != login ]; then
    watchdog "$daemon" &
    watchdog_pid=$!
fi

# With a backup, a controller back from an absence must not act on what it held in
# memory: the other one may have run the cluster meanwhile, and Slurm's primary, once it
# answers again, takes charge back (the backup hands over, its state saved) without
# reading the state folder. Its next save would then overwrite the jobs the backup took.
# An absence shows as this loop waking up SlurmctldTimeout late (the host or container
# was frozen, or hung on its storage) or, for the primary, as a backup's heartbeat in
# the state folder written well after the primary's own last one (it was cut off, and
# the backup took charge; a backup handing over to a primary that just started may
# write one more beat, seconds after the primary's first). slurmctld is then killed
# outright (a stop would save its state) and the container starts again: slurmctld asks
# the other to hand over, then reads the state.
fence_pid=
fence() {
    local daemon="$1" timeout last now beat writer at own=0 back=0
    timeout=$(sed -n 's/^SlurmctldTimeout=//p' /etc/slurm/slurm.conf)
    timeout=${timeout:-10}
    last=$(date +%s)
    while sleep 1; do
        now=$(date +%s)
        if [ $((now - last)) -ge "$timeout" ]; then
            log "this controller was away for $((now - last)) s (frozen or hung): restarting it to read the shared state"
            kill -KILL "$daemon" 2>/dev/null || true
            return
        fi
        last=$now
        # The shared state gone from under slurmctld (the storage container stopped or
        # its client died: what it writes would land in the host's folder, which no
        # other controller reads), or refusing writes (this host lost touch with the
        # others: the other controller may take charge there, and this one would act
        # on a queue it can no longer save). It stops outright; its container waits
        # until the state takes writes again, then slurmctld asks the other to hand over.
        if [ "${SLURMBOX_SHARED_STATE:-}" = glusterfs ] && ! state_writable; then
            log "the shared state is gone or takes no writes (this host cut off?): stopping slurmctld until it does"
            kill -KILL "$daemon" 2>/dev/null || true
            return
        fi
        # (That look may wait seconds on a brick just lost: not an absence.)
        last=$(date +%s)
        beat=$(od -An -tu8 --endian=big -N16 "$state/heartbeat" 2>/dev/null) || continue
        read -r at writer <<<"$beat"
        # A backup that took charge and handed it back starts again: Slurm's backup
        # keeps the cluster's ID only from its start, and without it, it could not take
        # charge a second time while slurmdbd is away too (the primary's host lost
        # again). A fresh start reads it from the state. Not at once: a primary that
        # fails again soon after its return finds this backup standing by as it is
        # (slurmdbd is there: the primary was just in charge), not starting, and the
        # start happens once the primary has held charge for 20 s.
        if [ -n "${SLURMBOX_BACKUP:-}" ]; then
            if [ "${writer:-}" = 1 ] && [ "${at:-0}" -ge "$ctld_started" ]; then
                own=$at
                back=0
            elif [ "$own" -gt 0 ] && [ "${writer:-}" = 0 ] && [ "${at:-0}" -gt "$own" ]; then
                [ "$back" -gt 0 ] || back=$now
                if [ $((now - back)) -ge 20 ]; then
                    log "the primary has been in charge again for 20 s: this backup starts afresh to stand by"
                    kill -TERM "$daemon" 2>/dev/null || true
                    return
                fi
            fi
            continue
        fi
        if [ "${writer:-}" = 0 ]; then
            [ "${at:-0}" -lt "$ctld_started" ] || own=$at
        elif [ "$own" -gt 0 ] && [ "${at:-0}" -gt $((own + timeout / 2)) ]; then
            log "a backup took charge while this primary ran cut off: restarting it to read the shared state"
            kill -KILL "$daemon" 2>/dev/null || true
            return
        fi
    done
}
if [ "$role" = controller ] && has_backup; then
    fence "$daemon" &
    fence_pid=$!
fi

# After an unclean stop, a job the lost seconds had started may be launched again while
# it still runs: Slurm then drains the nodes it finds it on ("Duplicate jobid") and the
# queue stops there. Once the nodes have reported what runs on them, such a node is put
# back in service, for the first ten minutes.
# Likewise a batch job launched again whose launch failed for it: Slurm requeues and
# holds it ("launch failed requeued held"), and it is released, once.
heal_pid=
heal_duplicates() {
    local until=$((SECONDS + 600)) node reason job released=" "
    until answers controller; do sleep 1; done
    while [ "$SECONDS" -lt "$until" ]; do
        while IFS='|' read -r node reason; do
            case "$reason" in *"Duplicate jobid"*) ;; *) continue ;; esac
            log "node $node was drained by the restart ($reason): putting it back in service"
            scontrol update nodename="$node" state=resume 2>&1 | sed "s/^/slurmbox-init[$role]: /" >&2 || true
        done < <(timeout 5 sinfo -h -N -R -o '%N|%E' 2>/dev/null || true)
        while IFS='|' read -r job reason; do
            # (squeue writes the reason in words, scontrol with underscores.)
            case "$reason" in "launch failed requeued held" | launch_failed_requeued_held) ;; *) continue ;; esac
            case "$released" in *" $job "*) continue ;; esac
            released="$released$job "
            log "job $job was held after the restart (its launch failed as it ran again): releasing it"
            scontrol release "$job" 2>&1 | sed "s/^/slurmbox-init[$role]: /" >&2 || true
        done < <(timeout 5 squeue -h -t PENDING -o '%i|%r' 2>/dev/null || true)
        sleep 5
    done
}
if [ "${unclean:-}" = 1 ]; then
    heal_duplicates &
    heal_pid=$!
fi

# A compute node's container starts with no job in it: the jobs the controller still
# has running here, started before this container, died with the last one (a crash or
# kill). They are requeued now, not when Slurm next asks the node what runs on it
# (minutes later); Slurm starts a requeued job again after cred_expire (slurm.conf).
requeue_lost_jobs() {
    local node="${SLURMBOX_NODE:-$(hostname)}" id start
    until answers compute; do sleep 1; done
    while read -r id start; do
        [ "$(date -d "$start" +%s 2>/dev/null || echo "$started")" -lt "$started" ] || continue
        log "job $id was running here when this node's last container died: requeueing it"
        scontrol requeue "$id" 2>&1 | sed "s/^/slurmbox-init[$role]: /" >&2 || true
    done < <(timeout 10 squeue -h -w "$node" -t RUNNING -o '%A %S' 2>/dev/null || true)
}
if [ "$role" = compute ]; then
    requeue_lost_jobs &
    heal_pid=$!
fi

# munged stops last, once the Slurm daemon is gone: a daemon that is stopping still
# takes requests (slurmctld saves its state meanwhile), and without munged it can check
# none of them: the client hears "Protocol authentication error", not a refused
# connection it would take to the other controller.
# Once: slurmdbd 24.11 told SIGTERM twice hangs (its threads wait on each other) until the
# engine kills it.
stopping=
stop() {
    [ -z "$stopping" ] || return 0
    stopping=1
    local pid others=()
    for pid in "${pids[@]}"; do [ "$pid" = "$munged" ] || others+=("$pid"); done
    kill -TERM "${others[@]}" $watchdog_pid $fence_pid $heal_pid $addresses_pid 2>/dev/null || true
    [ "$daemon" != "$munged" ] || kill -TERM "$munged" 2>/dev/null || true
}
trap stop TERM INT

status=0
wait -n "${pids[@]}" || status=$?
if [ -n "$stopping" ]; then
    # The container is stopping: TERM ended the wait, not a daemon.
    log "stopping"
else
    log "a daemon exited (status $status); stopping the others"
    stop
fi
# slurmctld that exits by itself (SIGTERM) has saved its state: the next start is clean.
# (Asked before the others are waited for: once reaped, its status is gone.)
daemon_status=0
wait "$daemon" 2>/dev/null || daemon_status=$?
kill -TERM "$munged" 2>/dev/null || true
wait || true
if [ "$role" = controller ] && [ "$daemon_status" = 0 ]; then rm -f "$marker"; fi
exit "$status"
