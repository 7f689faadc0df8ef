//! Upgrade in place: a cluster brought up by the last release (`common::baseline`) is
//! taken over by the next `up` of this build. This release changes what every container
//! starts with (slurmbox-init), gives the controller and slurmdbd JWT tokens, the login
//! node `web-login`, and adds slurmrestd, Prometheus and the dashboard. The compute
//! nodes are made again by a rolling change: each is drained, its running job finishes
//! (under the same job ID, its output whole), and only then is it replaced; a job
//! submitted just before `up` is not lost. The cluster then passes `verify`.

mod common;

use common::baseline::{BASELINE, baseline_slurmbox};
use common::{ClusterGuard, container_identities};

/// The default cluster (accounting on) made by the baseline release, with jobs
/// running, is taken over by this build's `up` without killing a job.
#[test]
fn up_takes_over_a_cluster_made_by_the_last_release_without_killing_a_job() {
    let cluster = ClusterGuard::new("upgrade");
    let name = cluster.name.as_str();

    let up = baseline_slurmbox(&["up", "--name", name]).ok();
    assert!(up.stderr.contains("Waiting for 2 compute nodes to be idle"), "{}", up.stderr);
    let before = container_identities(name);
    let mut roles: Vec<&str> = before.iter().map(|(n, _, _)| n.rsplit('-').next().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["controller", "db", "dbd", "login", "node1", "node2"], "{before:?}");

    // A job running across the upgrade, writing a line a second.
    let script = "sbatch --parsable -N1 --exclusive -o counted-%j.out --wrap 'for i in $(seq 40); do echo $i; sleep 1; done'";
    let job = baseline_slurmbox(&["exec", "--name", name, "--", "bash", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(job.parse::<u64>().is_ok(), "sbatch said {job:?}");
    let state = format!("squeue -h -j {job} -o %T");
    cluster.wait_for(&state, &format!("job {job} running"), |s| s.trim() == "RUNNING");
    // And one submitted right before the upgrade, with no wait: slurmctld writes a new
    // job to its state only seconds later, so the old controller must save it as it
    // stops, or the new one never hears of it.
    let fresh = baseline_slurmbox(&["exec", "--name", name, "--", "bash", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(fresh.parse::<u64>().is_ok(), "sbatch said {fresh:?}");

    let again = cluster.run(&["up"], &[]);
    assert!(
        again.code == 0
            && again.stderr.contains("3 created")
            && again.stderr.contains("2 to change node by node"),
        "this build's `up` on a cluster made by {BASELINE} (exit {}):\n{}",
        again.code,
        again.stderr
    );
    let after = container_identities(name);
    let nodes = |all: &[(String, String, String)]| -> Vec<(String, String, String)> {
        let node = |n: &str| ["node1", "node2"].iter().any(|r| n.ends_with(&format!("-{r}")));
        all.iter().filter(|(n, _, _)| node(n)).cloned().collect()
    };
    let (old, new) = (nodes(&before), nodes(&after));
    assert_eq!(new.len(), 2, "{after:?}");
    for n in &new {
        assert!(!old.contains(n), "node {n:?} was not made again");
    }
    let mut roles: Vec<&str> = after.iter().map(|(n, _, _)| n.rsplit('-').next().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        ["controller", "db", "dbd", "login", "metrics", "node1", "node2", "rest", "web"],
        "{after:?}"
    );
    // Both jobs ran to their end, once, their output whole.
    for id in [&job, &fresh] {
        let runs = cluster.wait_for(
            &format!("sacct -n -X -D -P -j {id} -o State"),
            &format!("job {id} completed"),
            |s| s.lines().any(|l| l == "COMPLETED"),
        );
        assert_eq!(runs.trim(), "COMPLETED", "job {id} across the upgrade");
        let out = cluster.sh(&format!("wc -l < counted-{id}.out")).ok().stdout;
        assert_eq!(out.trim(), "40", "job {id}'s output");
    }
    cluster.run(&["verify"], &[]).ok();
}
