//! The site's software on every node (`[software] packages`), on a real cluster: SciPy,
//! which the node image lacks, imports on both compute nodes; a second `up` builds
//! nothing and changes nothing; a package Debian does not have is refused when the
//! image is built (exit 2, apt's own words naming it) and the running cluster is left
//! as it was. One small cluster (no accounting, REST API or metrics: they play no part).
//!
//! Containers in jobs (`containers = true`): an image made here and saved with
//! `docker save`, copied into alice's home and made a bundle by `slurmbox-bundle`, runs
//! `srun -N2 --container` steps as alice on both nodes, MPI ranks among them
//! (`--mpi=pmix`, the image's own OpenMPI); a step over its memory inside it is
//! killed, and one given one of its node's two (fake) GPUs cannot open the other;
//! bob's home stays closed to her, and the node's root stays out of reach.

mod common;

use common::gpus::fake_gpus;
use common::images::{TestImage, docker_ok};
use common::{ClusterGuard, container_identities, slurmbox};

const SPEC: &str = "accounting = false\n[compute]\ncount = 2\n[rest]\nenabled = false\n\
                    [metrics]\nenabled = false\n";

#[test]
fn site_packages_reach_every_node_and_a_bogus_one_changes_nothing() {
    let cluster = ClusterGuard::new("software");
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cluster.toml");
    let spec = spec_path.to_str().unwrap();
    let write_spec = |packages: &str| {
        let text = format!("name = \"{}\"\n{SPEC}[software]\npackages = [{packages}]\n", cluster.name);
        std::fs::write(&spec_path, text).unwrap();
    };
    write_spec("\"python3-scipy\"");

    // The node image with SciPy: its own tag, which `image build -f` names too.
    slurmbox(&["up", "-f", spec]).ok();
    let tag = slurmbox(&["image", "build", "--quiet", "-f", spec]).ok().stdout.trim().to_string();
    assert!(tag.starts_with("slurmbox/node:24.11-"), "{tag}");
    assert_ne!(tag, common::node_image("24.11"), "the site's packages make another image");
    let script =
        "srun -N2 python3 -c 'import scipy, socket; print(socket.gethostname(), scipy.__version__)' | sort";
    let out = cluster.sh(script).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("node1 1.") && lines[1].starts_with("node2 1."), "{out}");

    // Again, unchanged: the image is the engine's already and no container changes.
    let before = container_identities(&cluster.name);
    let again = slurmbox(&["up", "-f", spec]).ok();
    assert!(again.stderr.contains(&format!("Image {tag} (cached")), "{}", again.stderr);
    assert!(!again.stderr.contains("built"), "{}", again.stderr);
    assert_eq!(container_identities(&cluster.name), before);

    // A package Debian does not have: refused at the image step, nothing touched.
    write_spec("\"python3-scipy\", \"slurmbox-no-such-package\"");
    let bogus = slurmbox(&["up", "-f", spec]);
    assert_eq!(bogus.code, 2, "{}", bogus.stderr);
    // The report is wrapped to the terminal's width, its lines marked with │.
    let said = bogus.stderr.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("apt says: E: Unable to locate package slurmbox-no-such-package"), "{said}");
    assert!(said.contains("no container was changed"), "{said}");
    assert_eq!(container_identities(&cluster.name), before, "the running cluster was touched");
    assert_eq!(cluster.sh("srun -N2 true && echo ok").ok().stdout, "ok\n");
}

/// A researcher's image: Debian with Python, OpenMPI and mpi4py (the node image's own
/// MPI, as a lab's image would have it), and a file only it has.
const RESEARCHER_IMAGE: TestImage = TestImage {
    repository: "slurmbox-test/researcher",
    what: "researcher's image",
    suite: "trixie",
    packages: &["python3-minimal", "openmpi-bin", "python3-mpi4py", "python3-numpy"],
    customize: &[r#"echo inside > "$1/etc/researcher-image""#],
};

#[test]
fn a_researchers_image_runs_job_steps_as_them_within_their_limits() {
    // Two fake GPUs on each node (see tests/gpus.rs): node1 gets nvidia0 and nvidia1.
    let devices = tempfile::tempdir().unwrap();
    let gpus = fake_gpus(devices.path(), 4);
    let cluster = ClusterGuard::new("containers");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let users = "[[user]]\nname = \"alice\"\nuid = 2001\n[[user]]\nname = \"bob\"\nuid = 2002\n";
    let with_gpus = SPEC.replace("count = 2\n", &format!("count = 2\ngpu_devices = {gpus:?}\n"));
    let text = format!("name = \"{}\"\n{with_gpus}{users}[software]\ncontainers = true\n", cluster.name);
    std::fs::write(&spec, text).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();

    // Her laptop's `docker save`, copied into her home.
    let archive = dir.path().join("researcher.tar");
    docker_ok(&["save", "-o", archive.to_str().unwrap(), &RESEARCHER_IMAGE.ensure()]);
    let login = format!("{}-login", cluster.name);
    docker_ok(&["cp", archive.to_str().unwrap(), &format!("{login}:/home/alice/researcher.tar")]);
    docker_ok(&["exec", &login, "chown", "2001:2001", "/home/alice/researcher.tar"]);
    cluster.sh("slurmbox-bundle researcher.tar researcher").ok();

    let steps = cluster.sh("srun -N2 --container=$HOME/researcher sh -c 'echo $(id -u) $(hostname) $(cat /etc/researcher-image)' | sort").ok();
    assert_eq!(steps.stdout, "2001 node1 inside\n2001 node2 inside\n");

    // MPI inside her image, across both nodes, two ranks on each: `slurmbox verify`'s pi
    // program, launched by Slurm's PMIx with the image's own OpenMPI.
    let pi = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/verify/pi.py");
    docker_ok(&["cp", pi, &format!("{login}:/home/alice/pi.py")]);
    let mpi = cluster.sh("srun -N2 -n4 --mpi=pmix --container=$HOME/researcher python3 pi.py").ok();
    let lines: Vec<&str> = mpi.stdout.lines().collect();
    assert_eq!(lines[..2], ["ranks=4", "hosts=node1,node2"], "{}", mpi.stdout);
    assert!(lines[2].starts_with("pi=3.14159265358979"), "{}", mpi.stdout);

    // Her step's memory is her job's, inside the image too.
    let hog = "x = bytearray(500 << 20); x[::4096] = bytes(len(x[::4096])); print('survived')";
    let oom = cluster.sh(&format!("srun --mem=100M --container=$HOME/researcher python3 -c \"{hog}\""));
    assert_ne!(oom.code, 0, "{}", oom.stdout);
    assert!(oom.stderr.contains("Out Of Memory") && !oom.stdout.contains("survived"), "{}", oom.stderr);

    // Her step's GPU is her job's, inside the image too: the other one on its node stays
    // closed (the job's device cgroup), the one she was given opens as far as a device
    // without a driver does.
    let probe = r#"for d in /dev/nvidia0 /dev/nvidia1; do python3 -c 'import os, sys
try:
    os.open(sys.argv[1], os.O_RDWR)
    print(sys.argv[1], "opened")
except OSError as e:
    print(sys.argv[1], e.strerror)' "$d"; done"#;
    cluster.sh(&format!("cat > gpu-probe.sh <<'EOF'\n{probe}\nEOF")).ok();
    let gpu = cluster.sh("srun -w node1 --gres=gpu:1 --container=$HOME/researcher sh gpu-probe.sh").ok();
    assert_eq!(gpu.stdout, "/dev/nvidia0 No such device or address\n/dev/nvidia1 Operation not permitted\n");

    // Neither bob's home nor the node's secrets are hers inside it.
    let reach = "srun -N1 --container=$HOME/researcher sh -c 'ls /home/bob; cat /proc/1/root/etc/munge/munge.key; id -u'";
    let out = cluster.sh(reach);
    assert!(out.stderr.contains("/home/bob': Permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("munge.key: Permission denied"), "{}", out.stderr);
    assert_eq!(out.stdout, "2001\n", "{}", out.stderr);
}
