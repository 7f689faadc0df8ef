//! Rolling changes on a real cluster: a change that makes the compute containers again
//! (`[compute] memory_mb`) waits for the jobs running there, node by node, while
//! `sbatch` keeps working; with `--requeue` the jobs start again elsewhere and complete.
//! One cluster for every step (each `up` on it is a real rolling change).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, ClusterGuard, slurmbox};

/// The spec: 2 compute nodes of `memory_mb` each, nothing but Slurm and accounting.
fn write_spec(path: &Path, name: &str, memory_mb: u32) {
    let text = format!(
        "name = \"{name}\"\n[compute]\ncount = 2\ncpus = 4\nmemory_mb = {memory_mb}\n\
         [rest]\nenabled = false\n[metrics]\nenabled = false\n[web]\nenabled = false\n"
    );
    std::fs::write(path, text).unwrap();
}

/// The spec on Slurm `slurm`: 2 compute nodes, with metrics (on 26.05 slurm.conf then
/// has `MetricsType`, a key 24.11 does not know).
fn write_versioned_spec(path: &Path, name: &str, slurm: &str) {
    let text = format!(
        "name = \"{name}\"\nslurm = \"{slurm}\"\n[compute]\ncount = 2\ncpus = 4\n\
         [rest]\nenabled = false\n[web]\nenabled = false\n"
    );
    std::fs::write(path, text).unwrap();
}

/// Polls `script` on the login node until `done` holds, for at most `limit`.
fn wait(cluster: &ClusterGuard, script: &str, limit: Duration, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let out = cluster.sh(script).stdout;
        if done(&out) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} after {limit:?}: {out:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A job on `node` that counts to `seconds`, a line a second, into ~/NAME.out.
fn counting_job(cluster: &ClusterGuard, name: &str, node: &str, seconds: u32) -> u64 {
    let script = format!(
        "sbatch --parsable --requeue -J {name} -w {node} -o ~/{name}.out \
         --wrap 'for i in $(seq {seconds}); do echo $i; sleep 1; done'"
    );
    let id = cluster.sh(&script).ok().stdout;
    id.trim().parse().unwrap_or_else(|_| panic!("sbatch said {id:?}"))
}

/// A loop on the login node submitting a tiny job a second until ~/stop exists,
/// writing "ok" or "FAIL ..." per submission to ~/loop.log.
fn submit_every_second(cluster: &ClusterGuard) -> Child {
    let script = "rm -f ~/stop ~/loop.log; while [ ! -e ~/stop ]; do \
                  if out=$(sbatch --parsable -o /dev/null --wrap true 2>&1); then echo ok >> ~/loop.log; \
                  else echo \"FAIL $(date +%T) $out\" >> ~/loop.log; fi; sleep 1; done";
    Command::new(BIN)
        .args(["exec", "--name", &cluster.name, "--", "bash", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Stops the loop and returns its log's lines.
fn stop_loop(cluster: &ClusterGuard, mut child: Child) -> Vec<String> {
    cluster.sh("touch ~/stop").ok();
    child.wait().unwrap();
    cluster.sh("cat ~/loop.log").ok().stdout.lines().map(String::from).collect()
}

/// The compute containers' spec-hash labels, asked of the engine.
fn node_hashes(cluster: &str) -> Vec<String> {
    (1..=2)
        .map(|i| {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{index .Config.Labels \"io.slurmbox.spec-hash\"}}"])
                .arg(format!("{cluster}-node{i}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect()
}

fn sacct_states(cluster: &ClusterGuard, jobs: &[u64]) -> String {
    let ids: Vec<String> = jobs.iter().map(u64::to_string).collect();
    cluster.sh(&format!("sacct -D -X -n -P -o JobID,State -j {}", ids.join(","))).ok().stdout
}

#[test]
fn a_change_waits_for_running_jobs_node_by_node_and_sbatch_works_throughout() {
    let cluster = ClusterGuard::new("roll");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let file = spec.to_str().unwrap();
    write_spec(&spec, &cluster.name, 1024);
    slurmbox(&["up", "-f", file]).ok();
    let before = node_hashes(&cluster.name);

    // A 60 s job on each node, then the change.
    let jobs = [counting_job(&cluster, "a", "node1", 60), counting_job(&cluster, "b", "node2", 60)];
    wait(&cluster, "squeue -h -t R -o %i | wc -l", Duration::from_secs(60), "both jobs running", |o| {
        o.trim() == "2"
    });
    let submitting = submit_every_second(&cluster);
    write_spec(&spec, &cluster.name, 1536);
    let started = Instant::now();
    let up = slurmbox(&["up", "-f", file]).ok();
    let took = started.elapsed();
    let log = stop_loop(&cluster, submitting);
    eprintln!("rolling change with two 60 s jobs: {took:?}\n{}", up.stderr);
    assert!(up.stderr.contains("waiting for job"), "{}", up.stderr);
    assert!(up.stderr.contains("draining (memory 1024 -> 1536 MiB)"), "{}", up.stderr);
    assert!(log.len() >= 20 && log.iter().all(|l| l == "ok"), "sbatch during the change: {log:?}");

    // Both jobs ran to their end, their output whole.
    let states = sacct_states(&cluster, &jobs);
    assert_eq!(states.lines().filter(|l| l.ends_with("|COMPLETED")).count(), 2, "{states}");
    for name in ["a", "b"] {
        let out = cluster.sh(&format!("cat ~/{name}.out")).ok().stdout;
        let want: Vec<String> = (1..=60).map(|i| i.to_string()).collect();
        assert_eq!(out.lines().collect::<Vec<_>>(), want, "{name}.out");
    }
    // The nodes run the new spec: new containers, and Slurm's RealMemory.
    let after = node_hashes(&cluster.name);
    assert!(after.iter().zip(&before).all(|(a, b)| a != b && !a.is_empty()), "{before:?} -> {after:?}");
    let memory = cluster.sh("sinfo -h -N -o '%N %m %t' | sort -u").ok().stdout;
    assert_eq!(memory.lines().collect::<Vec<_>>(), ["node1 1536 idle", "node2 1536 idle"], "{memory}");
    let again = slurmbox(&["up", "-f", file]).ok();
    assert!(
        !again.stderr.contains("recreated") && !again.stderr.contains("node by node"),
        "{}",
        again.stderr
    );

    // --requeue: the jobs start again from the beginning on the other node, and complete.
    let jobs = [counting_job(&cluster, "c", "node1", 20), counting_job(&cluster, "d", "node2", 20)];
    wait(&cluster, "squeue -h -t R -o %i | wc -l", Duration::from_secs(60), "both jobs running", |o| {
        o.trim() == "2"
    });
    write_spec(&spec, &cluster.name, 1024);
    let up = slurmbox(&["up", "-f", file, "--requeue"]).ok();
    assert!(up.stderr.contains("requeued job"), "{}", up.stderr);
    let ids: Vec<String> = jobs.iter().map(u64::to_string).collect();
    let done = format!("sacct -X -n -P -o State -j {}", ids.join(","));
    wait(&cluster, &done, Duration::from_secs(300), "requeued jobs completed", |o| {
        o.lines().filter(|l| *l == "COMPLETED").count() == 2
    });
    let states = sacct_states(&cluster, &jobs);
    for id in &ids {
        let of: Vec<&str> = states
            .lines()
            .filter(|l| l.split('|').next() == Some(id.as_str()))
            .map(|l| l.rsplit('|').next().unwrap())
            .collect();
        assert_eq!(of, ["REQUEUED", "COMPLETED"], "job {id}: {states}");
    }
    let memory = cluster.sh("sinfo -h -N -o '%N %m' | sort -u").ok().stdout;
    assert_eq!(memory.lines().collect::<Vec<_>>(), ["node1 1024", "node2 1024"], "{memory}");

    // --drain-timeout: a job longer than it holds node1, and `up` returns without it:
    // node2 is made again, node1 left draining with a reason naming the change (in
    // `status` too) while the job runs on; once it has ended, the next `up` makes node1.
    let before = node_hashes(&cluster.name);
    let job = counting_job(&cluster, "e", "node1", 45);
    wait(&cluster, "squeue -h -t R -o %i | wc -l", Duration::from_secs(60), "the job running", |o| {
        o.trim() == "1"
    });
    write_spec(&spec, &cluster.name, 1536);
    let up = slurmbox(&["up", "-f", file, "--drain-timeout", "5s"]).ok();
    eprintln!("up --drain-timeout 5s:\n{}", up.stderr);
    let after = node_hashes(&cluster.name);
    assert!(
        after[0] == before[0] && after[1] != before[1],
        "node1 kept, node2 made again: {before:?} -> {after:?}"
    );
    let reason = cluster.sh("sinfo -h -N -n node1 -o '%t|%E'").ok().stdout;
    assert!(reason.starts_with("drng|slurmbox: memory 1024 -> 1536 MiB"), "{reason}");
    let status = cluster.run(&["status"], &[]).ok().stdout;
    assert!(status.contains("node1: waiting for a change (memory 1024 -> 1536 MiB)"), "{status}");
    let done = format!("sacct -X -n -P -o State -j {job}");
    wait(&cluster, &done, Duration::from_secs(120), "the job completed", |o| o.trim() == "COMPLETED");
    slurmbox(&["up", "-f", file]).ok();
    let last = node_hashes(&cluster.name);
    assert!(last[0] != before[0] && last[1] == after[1], "node1 made again: {after:?} -> {last:?}");
    let out = cluster.sh("cat ~/e.out").ok().stdout;
    assert_eq!(out.lines().count(), 45, "e.out whole: {out}");
    let memory = cluster.sh("sinfo -h -N -o '%N %m %t' | sort -u").ok().stdout;
    assert_eq!(memory.lines().collect::<Vec<_>>(), ["node1 1536 idle", "node2 1536 idle"], "{memory}");
}

/// 24.11 -> 26.05 with a job running on each node: slurmdbd, the controller and the
/// login node move first, then the nodes one by one once their jobs end; nothing is
/// lost and accounting keeps its history.
#[test]
fn the_version_move_waits_for_running_jobs() {
    let cluster = ClusterGuard::new("rollv");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let file = spec.to_str().unwrap();
    write_versioned_spec(&spec, &cluster.name, "24.11");
    slurmbox(&["up", "-f", file]).ok();
    let earlier = cluster.sh("sbatch --parsable --wait --wrap true").ok().stdout;

    let jobs = [counting_job(&cluster, "a", "node1", 60), counting_job(&cluster, "b", "node2", 60)];
    wait(&cluster, "squeue -h -t R -o %i | wc -l", Duration::from_secs(60), "both jobs running", |o| {
        o.trim() == "2"
    });
    // (No loop of submissions on the login node here: a version move makes the login
    // node again, and a loop running there ends with it. The memory change above checks
    // that sbatch works throughout.)
    write_versioned_spec(&spec, &cluster.name, "26.05");
    let up = slurmbox(&["up", "-f", file]);
    eprintln!("{}", up.stderr);
    let up = up.ok();
    assert!(up.stderr.contains("Changing 2 running compute nodes"), "{}", up.stderr);
    // Jobs are taken again once the move is done.
    cluster.sh("sbatch --parsable --wait -o /dev/null --wrap true").ok();

    let states = sacct_states(&cluster, &jobs);
    assert_eq!(states.lines().filter(|l| l.ends_with("|COMPLETED")).count(), 2, "{states}");
    for name in ["a", "b"] {
        let out = cluster.sh(&format!("cat ~/{name}.out")).ok().stdout;
        assert_eq!(out.lines().count(), 60, "{name}.out: {out}");
    }
    let versions = cluster.sh("sinfo -h -N -o '%N %v' | sort -u").ok().stdout;
    let lines: Vec<&str> = versions.lines().collect();
    assert!(lines.len() == 2 && lines.iter().all(|l| l.contains(" 26.05")), "{versions}");
    // Accounting's history from before the move stays.
    let history = cluster.sh(&format!("sacct -X -n -P -o State -j {}", earlier.trim())).ok().stdout;
    assert_eq!(history.trim(), "COMPLETED", "job {earlier} from 24.11");
}
