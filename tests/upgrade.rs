//! Upgrade in place: a cluster brought up by the last release (`common::baseline`) is
//! taken over by the next `up` of this build. Its compute nodes keep their containers
//! (ID and start time), a job running across the upgrade keeps running under the same
//! job ID, and the cluster then passes `verify`. This release gives the controller and
//! slurmdbd JWT tokens (the controller's image and the accounting image have the
//! plugin), the login node `web-login`, and adds slurmrestd, Prometheus and the
//! dashboard: the controller, the database (its data on its volume), slurmdbd and the
//! login node alone are made anew.

mod common;

use common::baseline::{BASELINE, baseline_slurmbox};
use common::{ClusterGuard, container_identities};

/// The default cluster (accounting on) made by the baseline release, with a job
/// running, is taken over by this build's `up` without restarting a node.
#[test]
fn up_keeps_a_cluster_made_by_the_last_release_running() {
    let cluster = ClusterGuard::new("upgrade");
    let name = cluster.name.as_str();

    let up = baseline_slurmbox(&["up", "--name", name]).ok();
    assert!(up.stderr.contains("Waiting for 2 compute nodes to be idle"), "{}", up.stderr);
    let before = container_identities(name);
    let mut roles: Vec<&str> = before.iter().map(|(n, _, _)| n.rsplit('-').next().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["controller", "db", "dbd", "login", "node1", "node2"], "{before:?}");

    // A job running across the upgrade (long enough to outlast it; `down` ends it).
    let script = "sbatch --parsable --wrap 'sleep 600'";
    let job = baseline_slurmbox(&["exec", "--name", name, "--", "bash", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(job.parse::<u64>().is_ok(), "sbatch said {job:?}");
    let state = format!("squeue -h -j {job} -o %T");
    cluster.wait_for(&state, &format!("job {job} running"), |s| s.trim() == "RUNNING");

    let again = cluster.run(&["up"], &[]);
    assert!(
        again.code == 0 && again.stderr.contains("3 created, 4 recreated, 2 kept"),
        "this build's `up` on a cluster made by {BASELINE} (exit {}):\n{}",
        again.code,
        again.stderr
    );
    let after = container_identities(name);
    let nodes = |all: &[(String, String, String)]| -> Vec<(String, String, String)> {
        let node = |n: &str| ["node1", "node2"].iter().any(|r| n.ends_with(&format!("-{r}")));
        all.iter().filter(|(n, _, _)| node(n)).cloned().collect()
    };
    assert_eq!(nodes(&after), nodes(&before), "nodes replaced or restarted by the upgrade");
    let mut roles: Vec<&str> = after.iter().map(|(n, _, _)| n.rsplit('-').next().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        ["controller", "db", "dbd", "login", "metrics", "node1", "node2", "rest", "web"],
        "{after:?}"
    );
    assert_eq!(cluster.sh(&state).ok().stdout.trim(), "RUNNING", "job {job} after the upgrade");

    // verify's MPI job wants every CPU: the sleeping job makes way first.
    cluster.sh(&format!("scancel {job}")).ok();
    cluster.wait_for("squeue -h -o %i", "the queue empty", |s| s.trim().is_empty());
    cluster.run(&["verify"], &[]).ok();
}
