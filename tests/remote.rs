//! A cluster on a remote engine reached over ssh: slurmbox deploys into a lab "host"
//! (a container with its own Docker engine and sshd on its own address) exactly as it
//! would to a real machine, using nothing but ssh access and the engine.

mod common;

use common::lab::Lab;
use common::{slurmbox_env, unique_name};

#[test]
fn cluster_on_a_remote_engine_over_ssh() {
    let lab = Lab::start("remote", 1);
    let path = lab.path_env();
    let env = [("PATH", path.as_str())];
    let name = unique_name("remote");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\n[[host]]\nname = \"lab1\"\nengine = \"{}\"\n[compute]\nper_host = 2\ncpus = 4\n",
            lab.engine_url(0)
        ),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();

    // The host starts with an empty engine: the image is streamed to it, then the
    // cluster comes up there.
    let up = slurmbox_env(&["up", "-f", spec], &env).ok();
    assert!(up.stderr.contains("Sending image"), "{}", up.stderr);
    assert!(up.stderr.contains("Docker engine on lab1 (ssh://"), "{}", up.stderr);
    let containers =
        lab.ssh(0, &format!("docker ps --filter label=io.slurmbox.cluster={name} --format '{{{{.Names}}}}'"));
    let mut names: Vec<String> =
        String::from_utf8_lossy(&containers.stdout).lines().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{name}-controller"),
            format!("{name}-login"),
            format!("{name}-node1"),
            format!("{name}-node2")
        ]
    );

    // Everything else works through the same spec file, over ssh.
    let verify = slurmbox_env(&["verify", "-f", spec], &env).ok();
    assert!(verify.stdout.contains("MPI pi"), "{}", verify.stdout);
    let hosts = slurmbox_env(&["exec", "-f", spec, "--", "srun", "-N2", "hostname"], &env).ok();
    let mut hosts: Vec<&str> = hosts.stdout.lines().collect();
    hosts.sort();
    assert_eq!(hosts, ["node1", "node2"]);
    let failing = slurmbox_env(&["exec", "-f", spec, "--", "bash", "-c", "exit 3"], &env);
    assert_eq!(failing.code, 3);

    // A second `up` finds the image there and changes nothing.
    let again = slurmbox_env(&["up", "-f", spec], &env).ok();
    assert!(again.stderr.contains("present"), "{}", again.stderr);
    assert!(again.stderr.contains("4 kept"), "{}", again.stderr);

    slurmbox_env(&["down", "--purge", "-f", spec], &env).ok();
    let left = lab.ssh(0, &format!("docker ps -aq --filter label=io.slurmbox.cluster={name}; docker volume ls -q --filter label=io.slurmbox.cluster={name}"));
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
}
