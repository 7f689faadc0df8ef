//! Benchmark for the dashboard (issue 22), run as `cargo bench --bench web`. One run, on
//! the default cluster (Slurm 24.11, accounting on) with alice and 20 more researchers,
//! in a real headless Chromium (tests/common/browser.rs):
//!
//! - the jobs page with 1,000 jobs in the queue: from asking the browser for the page
//!   to its table holding every job, five times, 6 s apart (longer than nginx keeps an
//!   answer, so that each load reaches slurmctld). Target: <= 1.5 s;
//! - 20 researchers' browsers refreshing the overview every 5 s for a minute: the
//!   requests the overview makes (as the browser made them: its resource timings) sent
//!   with each researcher's own token, at each one's own moment. Reported: the requests
//!   per second that reached slurmrestd (nginx's log: those not answered from its
//!   cache), slurmctld's RPCs per second (`sdiag`), and `squeue`'s latency on the login
//!   node against the same with no dashboard open. Target: within 1.5x of idle.
//!
//! The cluster is taken down (`down --purge`) when the bench ends, whether or not it
//! fails.

#[allow(dead_code)]
#[path = "../tests/common/browser.rs"]
mod browser;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use browser::Browser;

const BIN: &str = env!("CARGO_BIN_EXE_slurmbox");
const JOBS: usize = 1000;
const RESEARCHERS: usize = 20;
const REFRESH: Duration = Duration::from_secs(5);
const LOAD: Duration = Duration::from_secs(60);

/// `slurmbox ARGS...`: its output; panics with its words when it fails.
fn slurmbox(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("slurmbox runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "slurmbox {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Cluster {
    name: String,
}

impl Cluster {
    fn sh(&self, user: &str, script: &str) -> String {
        slurmbox(&["exec", "--name", &self.name, "--user", user, "--", "bash", "-c", script])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            Command::new(BIN).args(["down", "--purge", "--yes", "--quiet", "--name", &self.name]).status();
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// `squeue` on the login node, timed there, ten times: the median in seconds.
fn squeue_latency(cluster: &Cluster) -> f64 {
    let script = "for i in $(seq 10); do s=$(date +%s%N); squeue >/dev/null; e=$(date +%s%N); \
                  echo $(( (e - s) / 1000 )); sleep 0.5; done";
    median(cluster.sh("alice", script).lines().map(|l| l.trim().parse::<f64>().unwrap() / 1e6).collect())
}

/// slurmctld's RPCs so far, all types together (`sdiag --json`).
fn rpcs(cluster: &Cluster) -> u64 {
    let doc: serde_json::Value = serde_json::from_str(&cluster.sh("root", "sdiag --json")).unwrap();
    doc["statistics"]["rpcs_by_message_type"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

/// One GET through the dashboard with `token`; its status.
fn get(addr: &str, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("the dashboard answers");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-SLURM-USER-TOKEN: {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The jobs page, loaded anew five times: seconds until its table holds every job.
fn jobs_page(b: &Browser, url: &str) -> Vec<f64> {
    let count = "return document.querySelectorAll('tr.job-row').length";
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_secs(6));
            b.goto("about:blank");
            let started = Instant::now();
            b.goto(&format!("{url}/#/jobs"));
            while b.eval(count).as_u64().unwrap_or(0) < JOBS as u64 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the jobs page never showed {JOBS} jobs"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            started.elapsed().as_secs_f64()
        })
        .collect()
}

/// What the overview asks the dashboard for in one refresh, as the browser asked it.
fn overview_requests(b: &Browser, url: &str) -> Vec<String> {
    b.goto(&format!("{url}/#/overview"));
    b.wait_for("#stats .card", Duration::from_secs(30));
    b.eval("performance.clearResourceTimings(); return true");
    std::thread::sleep(Duration::from_secs(12));
    let js =
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/api/'))";
    let seen: Vec<String> =
        b.eval(js).as_array().unwrap().iter().map(|v| v.as_str().unwrap().replacen(url, "", 1)).collect();
    let mut once: Vec<String> = Vec::new();
    for r in seen {
        if !once.contains(&r) {
            once.push(r);
        }
    }
    assert!(!once.is_empty(), "the overview asked nothing in 12 s");
    once
}

/// Each researcher asks for the overview's data every 5 s, starting at their own moment.
fn load(addr: &str, tokens: &[String], requests: &[String]) -> (usize, usize) {
    let started = Instant::now();
    let threads: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let (addr, token, requests) = (addr.to_string(), token.clone(), requests.to_vec());
            std::thread::spawn(move || {
                std::thread::sleep(REFRESH * i as u32 / RESEARCHERS as u32);
                let (mut sent, mut failed) = (0, 0);
                while started.elapsed() < LOAD {
                    let round = Instant::now();
                    for path in &requests {
                        sent += 1;
                        failed += usize::from(get(&addr, path, &token) != 200);
                    }
                    std::thread::sleep(REFRESH.saturating_sub(round.elapsed()));
                }
                (sent, failed)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Requests nginx passed to slurmrestd (not answered from its cache) since `since`.
fn reached_slurmrestd(cluster: &Cluster, since: &str) -> usize {
    let out =
        Command::new("docker").args(["logs", "--since", since, &format!("{}-web", cluster.name)]).output();
    let log = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    log.lines().filter(|l| l.contains("\"GET /slurm") && !l.ends_with(" HIT")).count()
}

fn main() {
    let cluster = Cluster { name: format!("bench-web-{}", std::process::id()) };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let mut text = format!("name = \"{}\"\n[[user]]\nname = \"alice\"\n", cluster.name);
    for i in 1..=RESEARCHERS {
        text.push_str(&format!("[[user]]\nname = \"r{i:02}\"\n"));
    }
    std::fs::write(&spec, text).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]);
    let status: serde_json::Value =
        serde_json::from_str(&slurmbox(&["status", "--name", &cluster.name, "--json"])).unwrap();
    let url = status["web_url"].as_str().expect("a dashboard").to_string();
    let addr = url.strip_prefix("http://").unwrap().to_string();

    let idle = squeue_latency(&cluster);
    cluster.sh(
        "alice",
        &format!("for i in $(seq {JOBS}); do sbatch --hold --quiet --wrap=true -o /dev/null; done"),
    );
    let idle_queued = squeue_latency(&cluster);

    let b = Browser::start();
    let link = slurmbox(&["web-login", "alice", "--name", &cluster.name]);
    b.goto(link.trim());
    let page = jobs_page(&b, &url);
    let requests = overview_requests(&b, &url);
    drop(b);

    let tokens: Vec<String> = (1..=RESEARCHERS)
        .map(|i| {
            let printed =
                slurmbox(&["token", &format!("r{i:02}"), "--lifespan", "1h", "--name", &cluster.name]);
            printed.trim().trim_start_matches("SLURM_JWT=").to_string()
        })
        .collect();
    let since = slurmbox(&["exec", "--name", &cluster.name, "--", "date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let before = rpcs(&cluster);
    let loaded = std::thread::scope(|s| {
        let latency = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(20));
            squeue_latency(&cluster)
        });
        let (sent, failed) = load(&addr, &tokens, &requests);
        (sent, failed, latency.join().unwrap())
    });
    let rpc_rate = (rpcs(&cluster) - before) as f64 / LOAD.as_secs_f64();
    let reached = reached_slurmrestd(&cluster, since.trim()) as f64 / LOAD.as_secs_f64();
    let (sent, failed, busy) = loaded;

    println!(
        "jobs page, {JOBS} jobs queued: {page:.2?} s; median {:.2} s (target <= 1.5 s)",
        median(page.clone())
    );
    println!("overview's requests per refresh: {requests:?}");
    println!(
        "{RESEARCHERS} researchers refreshing the overview every {} s for {} s: {sent} requests ({failed} failed), \
         {:.1}/s reached slurmrestd, slurmctld {rpc_rate:.1} RPCs/s",
        REFRESH.as_secs(),
        LOAD.as_secs(),
        reached
    );
    println!(
        "squeue on the login node: {idle:.3} s idle, {idle_queued:.3} s with {JOBS} jobs queued, {busy:.3} s with \
         the dashboards open: {:.2}x (target <= 1.5x)",
        busy / idle_queued
    );
}
