//! Metrics on real clusters, Slurm 24.11 and 26.05: every endpoint Prometheus scrapes
//! (slurmctld's own on 26.05, slurmbox-exporter on both) passes `promtool check
//! metrics`, Prometheus (NAME-metrics, published on `[metrics] port`) has every target
//! up, and after a burst of jobs a range query of running jobs returns points. On
//! 24.11 its data survives `down` and `up` (the NAME-metrics volume).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ClusterGuard, slurmbox};
use serde_json::Value;

/// A port nothing on this machine listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// GET `path` of Prometheus on `port` of this machine: its JSON answer.
fn prometheus(port: u16, path: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A query's characters as a URL carries them.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls until `done` holds of what `ask` returns, for at most `secs`.
fn wait_until<T: std::fmt::Debug>(
    secs: u64,
    what: &str,
    ask: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = ask();
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what} after {secs} s: {got:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Prometheus's targets: (job, scrape URL, health, last error).
fn targets(port: u16) -> Vec<(String, String, String, String)> {
    let answer = prometheus(port, "/api/v1/targets?state=active");
    let text = |t: &Value, k: &str| t[k].as_str().unwrap_or_default().to_string();
    answer["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let job = t["labels"]["job"].as_str().unwrap_or_default().to_string();
            (job, text(t, "scrapeUrl"), text(t, "health"), text(t, "lastError"))
        })
        .collect()
}

/// The points of `query` over the last `minutes`, every 5 s: (time, value) per series.
fn range(port: u16, query: &str, minutes: u64) -> Vec<(f64, f64)> {
    // Evaluation times on one grid (multiples of the 5 s step), so that the points of two
    // queries made at different moments can be compared by their times.
    let end = now() / 5 * 5;
    let path =
        format!("/api/v1/query_range?query={}&start={}&end={end}&step=5", encode(query), end - minutes * 60);
    let answer = prometheus(port, &path);
    let series = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    series
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|v| (v[0].as_f64().unwrap(), v[1].as_str().unwrap().parse().unwrap()))
        .collect()
}

/// What `url` answers inside the cluster (fetched by python3 in the controller).
fn fetch_inside(cluster: &str, url: &str) -> String {
    let script = format!(
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url:?}).read().decode())"
    );
    let out = Command::new("docker")
        .args(["exec", &format!("{cluster}-controller"), "python3", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Seconds one GET of `url` takes inside the cluster, its body read.
fn scrape_seconds(cluster: &str, url: &str) -> f64 {
    let script = format!(
        "import time, urllib.request; t = time.time(); urllib.request.urlopen({url:?}).read(); print(time.time() - t)"
    );
    let out = Command::new("docker")
        .args(["exec", &format!("{cluster}-controller"), "python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{url}: {out:?}"))
}

/// `promtool check metrics` in the metrics container, on `text`: its complaints.
fn promtool_check(cluster: &str, text: &str) -> Result<(), String> {
    let mut child = Command::new("docker")
        .args(["exec", "-i", &format!("{cluster}-metrics"), "promtool", "check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => {
            Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    }
}

/// Brings up a one-node cluster of `slurm` with Prometheus on a port of its own, checks
/// every endpoint and Prometheus's history; returns the cluster and the port.
fn metrics_work_on(slurm: &str, tag: &str) -> (ClusterGuard, tempfile::TempDir, u16) {
    let cluster = ClusterGuard::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let port = free_port();
    std::fs::write(
        &spec,
        format!(
            "name = \"{}\"\nslurm = \"{slurm}\"\n[compute]\ncount = 1\n[rest]\nenabled = false\n\
             [metrics]\nport = {port}\n",
            cluster.name
        ),
    )
    .unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();

    // status says where Prometheus is.
    let status = cluster.run(&["status"], &["--json"]).ok().stdout;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["metrics"]["url"], format!("http://localhost:{port}"), "{status}");
    let text = cluster.run(&["status"], &[]).ok().stdout;
    assert!(text.contains(&format!("metrics: Prometheus at http://localhost:{port}")), "{text}");

    // A burst of jobs: some run, the rest wait (one is held: a pending reason).
    cluster.sh("for i in $(seq 20); do sbatch -Q --wrap 'sleep 40'; done; sbatch -Q --hold --wrap true").ok();
    let expected = if slurm == "24.11" { 1 } else { 6 };
    let all_up = wait_until(
        90,
        "every target up",
        || targets(port),
        |t| t.len() == expected && t.iter().all(|(_, _, health, _)| health == "up"),
    );

    // Every endpoint's output passes promtool, and says what a dashboard reads.
    let mut families = String::new();
    for (job, url, _, _) in &all_up {
        let text = fetch_inside(&cluster.name, url);
        promtool_check(&cluster.name, &text).unwrap_or_else(|e| panic!("{job} ({url}): {e}\n{text}"));
        families.push_str(&text);
    }
    for family in [
        "slurm_nodes_idle",
        "slurm_node_cpus_alloc{node=\"node1\"}",
        "slurm_partition_nodes_cpus_alloc{partition=",
        "slurm_jobs_running",
        "slurm_user_jobs_cpus_alloc{username=",
        "slurm_account_jobs_running{account=",
        "slurm_schedule_cycle_last",
        "slurm_bf_cycle_cnt",
        "slurmbox_slurmdbd_up 1",
        "slurmbox_jobs_pending_reason{reason=\"JobHeldUser\"} 1",
    ] {
        assert!(families.contains(family), "no {family} in:\n{families}");
    }

    // Prometheus keeps running jobs' history.
    let points = wait_until(
        60,
        "running jobs in Prometheus",
        || range(port, "slurm_jobs_running", 5),
        |p| p.iter().any(|(_, v)| *v > 0.0),
    );
    assert!(!points.is_empty());

    // With 1,000 jobs in the queue, every endpoint answers within Prometheus's scrape
    // timeout (10 s). How fast, against its 1 s target, is bench/rest.sh's figure: a
    // busy machine makes any time here slower.
    cluster.sh("for i in $(seq 1000); do sbatch -Q --hold --wrap true; done").ok();
    for (job, url, _, _) in &all_up {
        let seconds = scrape_seconds(&cluster.name, url);
        eprintln!("{slurm}: {job} with 1,000 jobs: {seconds:.3} s");
        assert!(seconds < 10.0, "{job} ({url}) took {seconds} s with 1,000 jobs");
    }
    (cluster, dir, port)
}

#[test]
fn slurm_26_05_serves_its_own_metrics_and_prometheus_keeps_them() {
    metrics_work_on("26.05", "met26");
}

#[test]
fn slurm_24_11_gets_the_same_families_and_prometheus_keeps_them_over_down_and_up() {
    let (cluster, dir, port) = metrics_work_on("24.11", "met24");
    let spec = dir.path().join("cluster.toml");
    let before = wait_until(30, "a point", || range(port, "slurm_jobs_running", 5), |p| !p.is_empty());
    let first = before.iter().map(|(t, _)| *t).fold(f64::MAX, f64::min);
    slurmbox(&["down", "-f", spec.to_str().unwrap()]).ok();
    assert!(common::labelled_objects(&cluster.name).contains(&format!("{}-metrics", cluster.name)));
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let after =
        wait_until(60, "Prometheus back", || range(port, "slurm_jobs_running", 10), |p| !p.is_empty());
    assert!(
        after.iter().any(|(t, _)| *t <= first),
        "the points before `down` are gone: {before:?} / {after:?}"
    );

    // `[metrics] enabled = false` leaves no container (its volume stays until --purge).
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(&format!("[metrics]\nport = {port}\n"), "[metrics]\nenabled = false\n"),
    )
    .unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let running = Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    let names = String::from_utf8_lossy(&running.stdout);
    assert!(!names.lines().any(|n| n == format!("{}-metrics", cluster.name)), "{names}");
    let status = cluster.run(&["status"], &["--json"]).ok().stdout;
    assert!(serde_json::from_str::<Value>(&status).unwrap()["metrics"].is_null(), "{status}");
}
