//! Limits that hold: real clusters on the local engine, real jobs, tried the way a
//! researcher would. A job that asks for 100 MB and takes 500 is killed, `-c1` gets one
//! core, two `-c1` jobs get different cores, a cancelled job leaves nothing behind
//! (a daemonized child included), and `doctor` says what was observed. With
//! `compute.limits = false` none of it holds, and every command says so.

mod common;

use std::time::{Duration, Instant};

use common::{ClusterGuard, slurmbox};

/// The host's cores: a node that declares exactly these fits (no oversubscription).
fn host_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn up(cluster: &ClusterGuard, dir: &tempfile::TempDir, body: &str) -> String {
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, format!("name = \"{}\"\n{body}", cluster.name)).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok().stderr
}

fn doctor(cluster: &ClusterGuard) -> serde_json::Value {
    let out = cluster.run(&["doctor"], &["--json"]).ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}\n{}", out.stdout))
}

fn limits_hold(tag: &str, slurm: &str) {
    let cores = host_cores();
    let cluster = ClusterGuard::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let said = up(
        &cluster,
        &dir,
        &format!("slurm = \"{slurm}\"\n[compute]\ncount = 1\ncpus = {cores}\nmemory_mb = 1024\n"),
    );
    assert!(said.contains("Limits: enforced by Slurm's cgroup/"), "{said}");

    // 1. Memory: --mem=100M, 500 MB taken: the step is killed, the job ends
    // OUT_OF_MEMORY, the node stays healthy and the next job runs.
    let oom = cluster.sh("srun --mem=100M python3 -c 'x = bytearray(500 << 20); print(\"survived\")'");
    assert_ne!(oom.code, 0, "a job over its memory ran on: {}", oom.stdout);
    assert!(!oom.stdout.contains("survived"), "{}", oom.stdout);
    assert!(oom.stderr.contains("Out Of Memory"), "{}", oom.stderr);
    let state = cluster.wait_for(
        "scontrol show job $(squeue -h -t all -o %i | sort -n | tail -1) | grep -o 'JobState=[A-Z_]*'",
        "the job's final state",
        |s| !s.contains("RUNNING") && !s.contains("COMPLETING") && !s.trim().is_empty(),
    );
    assert_eq!(state.trim(), "JobState=OUT_OF_MEMORY");
    assert_eq!(cluster.sh("sinfo -h -o %T").ok().stdout.trim(), "idle");
    assert_eq!(cluster.sh("srun --mem=100M echo next").ok().stdout, "next\n");

    // 2. Cores: -c1 sees one CPU; two -c1 jobs at once get different ones.
    assert_eq!(cluster.sh("srun -c1 nproc").ok().stdout.trim(), "1");
    if cores >= 2 {
        let script = "cd ~ && rm -f cpu-*.out && \
             for i in 1 2; do sbatch -c1 -o cpu-$i.out --wrap \
             'grep Cpus_allowed_list /proc/self/status; touch started-$SLURM_JOB_ID; sleep 4'; done";
        cluster.sh(script).ok();
        // Both ran at the same time: each saw the other running.
        cluster.wait_for("squeue -h -t R | wc -l", "two -c1 jobs running at once", |n| n.trim() == "2");
        let lists = cluster
            .wait_for("cat ~/cpu-*.out 2>/dev/null", "both jobs' CPU lists", |s| s.lines().count() == 2);
        let cpus: Vec<&str> = lists.lines().map(|l| l.split_whitespace().last().unwrap_or("")).collect();
        assert_ne!(cpus[0], cpus[1], "two -c1 jobs on the same CPU: {lists}");
        cluster.wait_for("squeue -h | wc -l", "the -c1 jobs to end", |n| n.trim() == "0");
    }

    // 3. A cancelled job leaves no process behind, a daemonized child included.
    let job = cluster
        .sh("sbatch --parsable --wrap 'setsid sleep 1001 < /dev/null > /dev/null 2>&1 & sleep 1002'")
        .ok()
        .stdout
        .trim()
        .to_string();
    let node = format!("{}-node1", cluster.name);
    let sleeping = || {
        let out = std::process::Command::new("docker")
            .args(["exec", &node, "pgrep", "-f", "sleep 100[12]"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping() < 2 {
        assert!(Instant::now() < deadline, "job {job} did not start both sleeps");
        std::thread::sleep(Duration::from_millis(300));
    }
    cluster.sh(&format!("scancel {job}")).ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping() > 0 {
        assert!(Instant::now() < deadline, "processes of cancelled job {job} still run");
        std::thread::sleep(Duration::from_millis(300));
    }

    // 5. doctor says what 1–3 showed.
    let report = doctor(&cluster);
    let node = &report["nodes"][0]["limits"]["Ok"];
    for limit in ["memory", "cores", "processes"] {
        assert_eq!(node[limit]["enforced"], true, "{limit}: {report:#}");
    }
    assert_eq!(node["exclusive_cores"], true, "{report:#}");
    assert!(node["memory"]["detail"].as_str().unwrap().contains("held to 1152 MiB"), "{report:#}");
    let status = cluster.run(&["status"], &[]).ok().stdout;
    assert!(status.contains("limits (memory, cores, processes): enforced by cgroup/"), "{status}");
}

#[test]
fn limits_hold_on_24_11() {
    limits_hold("limits2411", "24.11");
}

#[test]
fn limits_hold_on_26_05() {
    limits_hold("limits2605", "26.05");
}

/// `compute.limits = false`: nothing is enforced, and `up`, `status` and `doctor` say so.
#[test]
fn limits_turned_off_are_reported_as_off() {
    let cluster = ClusterGuard::new("limitsoff");
    let dir = tempfile::tempdir().unwrap();
    let said = up(&cluster, &dir, "[compute]\ncount = 1\nlimits = false\n");
    assert!(said.contains("Limits: NOT enforced (compute.limits = false in the spec)"), "{said}");
    // The same job that is killed where limits hold runs to its end.
    let out = cluster.sh("srun --mem=100M python3 -c 'x = bytearray(300 << 20); print(\"survived\")'").ok();
    assert_eq!(out.stdout, "survived\n");
    let report = doctor(&cluster);
    let node = &report["nodes"][0]["limits"]["Ok"];
    for limit in ["memory", "cores", "processes"] {
        assert_eq!(node[limit]["enforced"], false, "{limit}: {report:#}");
    }
    assert!(report["limits"].as_str().unwrap().starts_with("NOT enforced"), "{report:#}");
    let status = cluster.run(&["status"], &[]).ok().stdout;
    assert!(status.contains("limits (memory, cores, processes): NOT enforced on node1"), "{status}");
}
