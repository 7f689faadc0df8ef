//! The lab fixture itself (tests/common/lab.rs): several machines on this one, each
//! with its own Docker engine reached over ssh, on a network a test can cut.

mod common;

use std::process::Command;
use std::time::Instant;

use common::lab::Lab;

/// Whether host `from` gets an answer to one ping of host `to`'s address.
fn pings(lab: &Lab, from: usize, to: usize) -> bool {
    lab.ssh(from, &format!("ping -c1 -W1 {}", lab.hosts()[to].ip)).status.success()
}

#[test]
fn lab_hosts_run_their_own_engines_reached_over_ssh() {
    let started = Instant::now();
    let lab = Lab::start("hosts", 3);
    eprintln!("lab: 3 hosts ready in {:.1?}", started.elapsed());

    for (i, host) in lab.hosts().iter().enumerate() {
        let version = lab.ssh_ok(i, "docker info --format '{{.ServerVersion}}'");
        assert!(!version.trim().is_empty(), "{}: no server version", host.container);
        let addresses = lab.ssh_ok(i, "hostname -I");
        assert!(
            addresses.split_whitespace().any(|a| a == host.ip.to_string()),
            "{} has addresses {addresses:?}, not {}",
            host.container,
            host.ip
        );
    }

    // The wrapper on path_env() is what makes ssh:// engine URLs work for programs that
    // run `ssh` themselves, here the docker CLI.
    let out = Command::new("docker")
        .args(["--host", &lab.engine_url(1), "info", "--format", "{{.Name}}"])
        .env("PATH", lab.path_env())
        .output()
        .expect("run docker --host ssh://");
    assert!(out.status.success(), "docker over ssh:// failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), lab.hosts()[1].container);

    // A host can fall off the network and come back at the same address.
    assert!(pings(&lab, 1, 2), "host1 cannot reach host2");
    lab.disconnect(2);
    assert!(!pings(&lab, 1, 2), "host1 still reaches host2 after it was disconnected");
    lab.reconnect(2);
    assert!(pings(&lab, 1, 2), "host1 cannot reach host2 after it was reconnected");
    lab.ssh_ok(2, "true");

    // Every host's engine starts with the node image (from the lab's seed), host0's
    // with the other images of a default cluster's controller host too; each runs it.
    let image = common::node_image("24.11");
    let controller =
        common::slurmbox(&["image", "build", "--quiet", "--controller", "--slurm", "24.11"]).ok().stdout;
    let listed = |i: usize| lab.ssh_ok(i, "docker images --format '{{.Repository}}:{{.Tag}}'");
    assert!(listed(0).lines().any(|l| l == controller.trim()), "host0 lacks {controller}: {}", listed(0));
    for i in 0..3 {
        assert!(listed(i).lines().any(|l| l == image), "host{i} lacks {image}: {}", listed(i));
        let cmd = format!("docker run --rm --network host --entrypoint slurmd {image} -V");
        assert!(lab.ssh_ok(i, &cmd).starts_with("slurm-wlm 24.11"), "host{i}: slurmd -V failed");
    }
    assert!(
        !listed(1).contains("slurmbox/controller"),
        "host1 has the controller host's images: {}",
        listed(1)
    );

    // An inner engine runs our node image, loaded into it over ssh (after removing the
    // seeded one).
    lab.ssh_ok(0, &format!("docker rmi {image}"));
    let started = Instant::now();
    lab.load_image(0, &image);
    eprintln!("lab: {image} loaded into host0 in {:.1?}", started.elapsed());
    let version = lab.ssh_ok(0, &format!("docker run --rm --network host --entrypoint slurmd {image} -V"));
    assert!(version.lines().any(|l| l.starts_with("slurm-wlm 24.11")), "slurmd -V printed {version:?}");
}
