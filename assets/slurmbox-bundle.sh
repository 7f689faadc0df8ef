#!/bin/bash
# slurmbox-bundle IMAGE.tar DIR: makes DIR a bundle for Slurm's containers
# (`srun --container=DIR`) from an image archive made with `docker save` or
# `podman save` (docker-archive or oci-archive): its layers unpacked in order into
# DIR/rootfs, and DIR/config.json, which runs the job step as the caller, in a user
# namespace that maps only the caller's own UID and GID, on the image read-only, with
# the node's /home, /tmp, /dev, /proc and slurmd's spool folder (for MPI). Run by the
# researcher, without root.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: slurmbox-bundle IMAGE.tar DIR   (then: srun --container=DIR CMD)" >&2
    exit 2
fi
exec python3 - "$@" <<'PY'
import json, os, shutil, sys, tarfile

archive, bundle = sys.argv[1], os.path.abspath(sys.argv[2])
rootfs = os.path.join(bundle, "rootfs")
if os.path.exists(rootfs):
    sys.exit(f"slurmbox-bundle: {rootfs} exists already; remove it or name another folder")


def blob(digest):
    return "blobs/" + digest.replace(":", "/", 1)


def layers_of(t):
    names = set(t.getnames())
    if "manifest.json" in names:  # docker save (Docker 25 and later write an OCI layout too)
        return json.load(t.extractfile("manifest.json"))[0]["Layers"]
    if "index.json" in names:  # podman save --format oci-archive
        manifest = json.load(t.extractfile("index.json"))
        while "manifests" in manifest:  # an index of indexes, down to one image
            manifest = json.load(t.extractfile(blob(manifest["manifests"][0]["digest"])))
        return [blob(layer["digest"]) for layer in manifest["layers"]]
    sys.exit(f"slurmbox-bundle: {archive} is not a docker-archive or oci-archive")


def unpack(layer):
    """One layer over the ones before: its whiteouts remove what they name."""
    keep = []
    for m in layer:
        parent, base = os.path.split(m.name)
        target = os.path.join(rootfs, parent)
        if base == ".wh..wh..opq":
            for entry in os.listdir(target) if os.path.isdir(target) else []:
                path = os.path.join(target, entry)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        elif base.startswith(".wh."):
            path = os.path.join(target, base[4:])
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
        elif not (m.isdev() or m.isfifo()):  # /dev is the node's; device files need root
            keep.append(m)
    # The image's own absolute links (/etc/alternatives, ...) are kept: the caller
    # unpacks with their own rights only.
    layer.extractall(rootfs, members=keep, filter="fully_trusted")


os.makedirs(rootfs)
with tarfile.open(archive) as t:
    for name in layers_of(t):
        with tarfile.open(fileobj=t.extractfile(name), mode="r:*") as layer:
            unpack(layer)

uid, gid = os.getuid(), os.getgid()


def bind(path, *extra):
    return {"destination": path, "type": "bind", "source": path, "options": ["rbind", "nosuid", *extra]}


config = {
    "ociVersion": "1.0.0",
    # Slurm puts the step's command and environment here; it starts in the home folder.
    "process": {
        "terminal": False,
        "user": {"uid": uid, "gid": gid},
        "args": ["/bin/sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": os.path.expanduser("~"),
        "noNewPrivileges": True,
        "capabilities": {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
    },
    "root": {"path": "rootfs", "readonly": True},
    # The node's /proc, bound rather than mounted anew: the engine hides parts of it,
    # and the kernel refuses a fresh proc mount there. /dev likewise, with the job's
    # GPUs (its cgroup still decides which devices it may open).
    "mounts": [
        bind("/proc", "nodev"),
        bind("/sys", "nodev", "ro"),
        bind("/dev"),
        bind("/home", "nodev"),
        bind("/tmp", "nodev"),
        # slurmd's spool folder (slurmbox's SlurmdSpoolDir): a step's PMIx server keeps
        # its shared data there (PMIX_SERVER_TMPDIR), which MPI ranks read to start
        # (`srun --mpi=pmix`). Without it OpenMPI fails or crashes in MPI_Comm_dup.
        bind("/var/spool/slurmd", "nodev"),
    ],
    # A user and a mount namespace only: the step stays in the node's network, PIDs
    # and job cgroup (its memory and cores).
    "linux": {
        "namespaces": [{"type": "user"}, {"type": "mount"}],
        "uidMappings": [{"containerID": uid, "hostID": uid, "size": 1}],
        "gidMappings": [{"containerID": gid, "hostID": gid, "size": 1}],
    },
}
with open(os.path.join(bundle, "config.json"), "w") as f:
    json.dump(config, f, indent=1)
print(f"{bundle}: srun --container={bundle} CMD")
PY
