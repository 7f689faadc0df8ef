//! Benchmark for clusters over several hosts (issue "Many hosts"), run as
//! `cargo bench --bench multihost`. Everything is measured in one run, on a lab of three
//! "hosts" on this machine (`tests/common/lab.rs`: containers with their own Docker
//! engine and sshd, reached over ssh like real machines):
//!
//! - image distribution: `up` of a one-host cluster on a host whose engine has no node
//!   image, then of a three-host cluster, which sends the image to the two hosts still
//!   lacking it at once. Reported: the whole `up`, and the transfer itself as slurmbox's
//!   own "Image on HOST (sent, N s)" step times it (`docker save` here, `docker load`
//!   there, over the engine's ssh connection);
//! - warm bring-up, 1 host against 3 hosts: with the image everywhere, `up` of a purged
//!   cluster (controller, login and one compute node, against controller, login and
//!   three nodes, one per host), three times each, alternating; medians, and their
//!   ratio. Target: 3 hosts / 1 host <= 1.5, since hosts are provisioned in parallel;
//! - MPI pi wall time: the program `verify` runs (`assets/verify/pi.py`), submitted the
//!   way `verify` does (`sbatch --wait`, `mpiexec` inside the job) on the three-host
//!   cluster: 4 ranks on one node, the same 4 ranks spread over the three hosts (what
//!   crossing hosts costs), and 4 ranks on each of the three (the whole cluster), three
//!   times each, medians. Reported: `mpiexec` alone, timed inside the job, and submit to
//!   done (from just before `sbatch` on the login node to the end of `mpiexec`; the lab's
//!   hosts share one clock). Not `sbatch --wait`'s own return: it polls the job, after
//!   2 s and then 8 s more, so its wall time is 2 s or 10 s whatever the job takes.
//! - the shared /home: the same file work on the three-host cluster with /home on a
//!   folder every host mounts (the lab's /gfsv: one folder of this machine, so no
//!   network in between), then on a cluster whose /home is the GlusterFS volume
//!   slurmbox runs on the hosts (`[home] shared = "glusterfs"`, replicated to all
//!   three): a job step on pi2 writes one large file (`dd ... conv=fsync`) and many
//!   small ones, then one on pi3 reads them all back. Timed inside the steps. Also the
//!   GlusterFS cluster's `up`: the first one (storage image sent to every host), then
//!   warm ones of the purged cluster on one host against on three (target: 3 hosts /
//!   1 host <= 1.5, like the warm `up` above).
//!
//! `cargo bench --bench multihost -- --glusterfs` runs only that last bring-up part, and
//! prints the progress lines of the last warm `up` of each.
//!
//! The lab's hosts share this machine's cores: the three-host numbers show slurmbox's
//! and MPI's own overhead and parallelism, not what more machines would add, and 12
//! ranks on a small machine are mostly waiting for a core.
//!
//! Clusters are taken down (`down --purge`) when the bench ends, whether or not it
//! fails; the lab removes its hosts when dropped.

#[path = "../tests/common/images.rs"]
mod images;
#[allow(dead_code)]
#[path = "../tests/common/lab.rs"]
mod lab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use lab::Lab;

const BIN: &str = env!("CARGO_BIN_EXE_slurmbox");
const HOSTS: usize = 3;
/// Timed runs of each warm `up` and each MPI job; the median is reported.
const ROUNDS: usize = 3;
/// Target of the issue: warm `up` of 3 hosts at most this many times that of 1 host.
const TARGET_RATIO: f64 = 1.5;
/// MPI ranks per compute node: nodes declare at least 4 CPUs.
const RANKS_PER_NODE: usize = 4;
const PI_PROGRAM: &str = include_str!("../assets/verify/pi.py");
/// Folder of the pi program and its job scripts, in the default user's (shared) home.
const WORKDIR: &str = ".slurmbox-bench";
/// The shared /home's workload: one file of this many MB, and this many small files.
const LARGE_MB: usize = 128;
const SMALL_FILES: usize = 500;

fn main() {
    let image = slurmbox(None, &["image", "build", "--quiet"], "").stdout.trim().to_string();
    let lab = Lab::start("bench", HOSTS);
    std::fs::create_dir_all(lab.shared_dir().join("home")).expect("create the shared /home");
    let dir = tempfile::tempdir().expect("create a tempdir for the specs");
    let name = format!("bench-mh-{}", std::process::id());
    if std::env::args().any(|a| a == "--glusterfs") {
        // Only the GlusterFS /home's bring-up, 1 host against 3.
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let ups = glusterfs_ups(&lab, dir.path(), &name);
        for (hosts, steps) in [1, HOSTS].iter().zip(&ups.last_steps) {
            println!("\nthe last warm up of {hosts} host(s) with a GlusterFS /home:\n{steps}");
        }
        println!("multihost bench, --glusterfs (lab of {HOSTS} hosts on this machine, {cores} cores)");
        ups.print();
        return;
    }
    let one = Cluster::new(&lab, dir.path(), &format!("{name}-one"), 1, Home::Volume);
    let three = Cluster::new(&lab, dir.path(), &format!("{name}-three"), HOSTS, Home::Folder);

    note("up of 1 host, image not there yet");
    let (cold_one, sent_one) = one.up_sending(&["pi1"]);
    let size_mb = image_size_mb(&lab, &image);
    one.down();
    note("up of 3 hosts, image missing on 2 of them");
    let (cold_three, sent_three) = three.up_sending(&["pi2", "pi3"]);

    let mut warm_one = Vec::new();
    let mut warm_three = Vec::new();
    for round in 1..=ROUNDS {
        note(&format!("warm up, round {round} of {ROUNDS}"));
        three.down();
        warm_one.push(one.up().seconds);
        one.down();
        warm_three.push(three.up().seconds);
    }

    // The three-host cluster is up: the MPI jobs run there.
    three.write_home_file(&format!("{WORKDIR}/pi.py"), PI_PROGRAM);
    let layouts = [(1, RANKS_PER_NODE), (HOSTS, RANKS_PER_NODE), (HOSTS, HOSTS * RANKS_PER_NODE)];
    let mut pi: Vec<Vec<PiJob>> = layouts.iter().map(|_| Vec::new()).collect();
    for round in 1..=ROUNDS {
        note(&format!("MPI pi, round {round} of {ROUNDS}"));
        for (jobs, &(nodes, ranks)) in pi.iter_mut().zip(&layouts) {
            jobs.push(three.pi_job(nodes, ranks));
        }
    }

    note("shared /home on a host folder");
    let folder_io = HomeIo::measure(&three);
    three.down();
    let gluster = glusterfs_ups(&lab, dir.path(), &name);
    note("shared /home on GlusterFS");
    let gluster_io = HomeIo::measure(&gluster.cluster);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ratio = median(&warm_three) / median(&warm_one);
    println!();
    println!("multihost bench (lab of {HOSTS} hosts on this machine, {cores} cores, {image})");
    println!(
        "image to 1 empty host:         {} in a {:.1} s up ({size_mb:.0} MB image, {:.0} MB/s)",
        sends(&sent_one),
        cold_one.seconds,
        size_mb / sent_one[0].1
    );
    println!("image to 2 more hosts at once: {} in a {:.1} s up", sends(&sent_three), cold_three.seconds);
    println!("warm up, 1 host:  median {:.1} s (runs: {})", median(&warm_one), runs(&warm_one));
    println!("warm up, 3 hosts: median {:.1} s (runs: {})", median(&warm_three), runs(&warm_three));
    println!(
        "ratio 3/1: {ratio:.2}x (target <= {TARGET_RATIO}: {})",
        if ratio <= TARGET_RATIO { "met" } else { "NOT met" }
    );
    for (jobs, (nodes, ranks)) in pi.iter().zip(layouts) {
        let place = if nodes == 1 { "1 node".to_string() } else { format!("across {nodes} hosts") };
        println!("MPI pi, {place}, {ranks} ranks: {}", PiJob::summary(jobs));
    }
    println!("shared /home, host folder: {folder_io}");
    println!("shared /home, GlusterFS:   {gluster_io}");
    gluster.print();
    println!("(warm up of 3 hosts with a host folder as /home: {:.1} s)", median(&warm_three));
}

/// Warm `up`s of purged clusters whose /home is the GlusterFS volume slurmbox runs: on
/// one host against on three (the target: at most 1.5 times as long), after a
/// first `up` of the three that sends the storage image to every host.
struct GlusterUps {
    /// The three-host cluster, up when returned.
    cluster: Cluster,
    cold: f64,
    storage_sent: Vec<(String, f64)>,
    warm_one: Vec<f64>,
    warm_three: Vec<f64>,
    /// The progress lines of the last warm `up` of each (1 host, 3 hosts).
    last_steps: [String; 2],
}

fn glusterfs_ups(lab: &Lab, dir: &Path, name: &str) -> GlusterUps {
    let one = Cluster::new(lab, dir, &format!("{name}-gluster1"), 1, Home::GlusterFs);
    let three = Cluster::new(lab, dir, &format!("{name}-gluster"), HOSTS, Home::GlusterFs);
    note("up of 3 hosts with a GlusterFS /home, storage image not there yet");
    let cold = three.up();
    let storage_sent = image_sends(&cold.stderr, "Storage image on ");
    let (mut warm_one, mut warm_three) = (Vec::new(), Vec::new());
    let mut last_steps = [String::new(), String::new()];
    for round in 1..=ROUNDS {
        note(&format!("warm up with a GlusterFS /home, round {round} of {ROUNDS}"));
        three.down();
        let run = one.up();
        warm_one.push(run.seconds);
        last_steps[0] = run.stderr;
        one.down();
        let run = three.up();
        warm_three.push(run.seconds);
        last_steps[1] = run.stderr;
    }
    GlusterUps { cluster: three, cold: cold.seconds, storage_sent, warm_one, warm_three, last_steps }
}

impl GlusterUps {
    fn print(&self) {
        let ratio = median(&self.warm_three) / median(&self.warm_one);
        println!(
            "up with GlusterFS /home, 3 hosts: first {:.1} s (storage image: {})",
            self.cold,
            sends(&self.storage_sent)
        );
        println!(
            "warm up with GlusterFS /home, 1 host:  median {:.1} s (runs: {})",
            median(&self.warm_one),
            runs(&self.warm_one)
        );
        println!(
            "warm up with GlusterFS /home, 3 hosts: median {:.1} s (runs: {})",
            median(&self.warm_three),
            runs(&self.warm_three)
        );
        println!(
            "GlusterFS ratio 3/1: {ratio:.2}x (target <= {TARGET_RATIO}: {})",
            if ratio <= TARGET_RATIO { "met" } else { "NOT met" }
        );
    }
}

/// Seconds of the shared /home's workload (see the module's doc).
struct HomeIo {
    write_large: f64,
    write_small: f64,
    read_large: f64,
    read_small: f64,
}

impl HomeIo {
    /// Runs the workload on `cluster`: written by a job step on pi2, read on pi3.
    fn measure(cluster: &Cluster) -> HomeIo {
        let timed = |node: &str, key: &str, first: &str, second: &str| {
            format!(
                "srun -w {node} bash -c 't0=$(date +%s.%N); {first}; t1=$(date +%s.%N); {second}; echo {key}=$t0 $t1 $(date +%s.%N)'"
            )
        };
        let write = timed(
            "pi2",
            "write",
            &format!("dd if=/dev/zero of=large bs=1M count={LARGE_MB} conv=fsync status=none"),
            &format!("for i in $(seq {SMALL_FILES}); do echo $i > small$i; done"),
        );
        let read = timed(
            "pi3",
            "read",
            "cat large > /dev/null",
            &format!("test $(cat small* | wc -l) = {SMALL_FILES}"),
        );
        let out = cluster.bash(
            &format!("mkdir -p {WORKDIR}/io && cd {WORKDIR}/io && rm -f large small* && {write} && {read}"),
            "",
        );
        let times = |key: &str| -> Vec<f64> {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key}= in:\n{}", out.stdout))
                .split(' ')
                .map(|t| t.parse().expect("a date +%s.%N time"))
                .collect()
        };
        let (w, r) = (times("write"), times("read"));
        HomeIo {
            write_large: w[1] - w[0],
            write_small: w[2] - w[1],
            read_large: r[1] - r[0],
            read_small: r[2] - r[1],
        }
    }
}

impl std::fmt::Display for HomeIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = LARGE_MB as f64;
        let files = SMALL_FILES as f64;
        write!(
            f,
            "on pi2 {LARGE_MB} MB written at {:.0} MB/s, {SMALL_FILES} small files at {:.0}/s; \
             on pi3 read at {:.0} MB/s and {:.0} files/s",
            mb / self.write_large,
            files / self.write_small,
            mb / self.read_large,
            files / self.read_small
        )
    }
}

/// One `slurmbox` run that exited 0.
struct Run {
    stdout: String,
    stderr: String,
    seconds: f64,
}

/// Runs `slurmbox ARGS...` with `stdin` fed to it, and PATH set to `path` when given
/// (a lab's, so that its `ssh` reaches the lab's hosts). Panics with everything it
/// printed unless it exits 0.
fn slurmbox(path: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run slurmbox");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).expect("write slurmbox's stdin");
    let out = child.wait_with_output().expect("wait for slurmbox");
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    assert!(
        out.status.success(),
        "slurmbox {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        run.stdout,
        run.stderr
    );
    run
}

/// Where a bench cluster's /home is.
#[derive(Clone, Copy)]
enum Home {
    /// A volume on the controller's host (one host only).
    Volume,
    /// The lab's folder every host mounts.
    Folder,
    /// The GlusterFS volume slurmbox runs on the hosts.
    GlusterFs,
}

/// A cluster of the bench: its spec file on lab hosts `pi1..piN` (lab hosts 0..N), and
/// `down --purge` when dropped, on success and on panic alike.
struct Cluster {
    spec: PathBuf,
    path: String,
}

impl Cluster {
    /// Controller and login on pi1, one compute node per host (lab hosts 0..hosts), and
    /// /home as `home` says.
    fn new(lab: &Lab, dir: &Path, name: &str, hosts: usize, home: Home) -> Cluster {
        let mut text = format!("name = \"{name}\"\ncontroller = \"pi1\"\n[compute]\nper_host = 1\n");
        match home {
            Home::Volume => {}
            Home::GlusterFs => text.push_str("[home]\nshared = \"glusterfs\"\n"),
            Home::Folder => text.push_str(&format!("[home]\nhost_path = \"{}/home\"\n", lab::SHARED_MOUNT)),
        }
        for i in 0..hosts {
            text.push_str(&format!("[[host]]\nname = \"pi{}\"\nengine = \"{}\"\n", i + 1, lab.engine_url(i)));
        }
        let spec = dir.join(format!("{name}.toml"));
        std::fs::write(&spec, text).expect("write the spec");
        Cluster { spec, path: lab.path_env() }
    }

    /// `slurmbox COMMAND -f SPEC ARGS...`.
    fn run(&self, command: &str, args: &[&str], stdin: &str) -> Run {
        let spec = self.spec.to_str().expect("utf-8 spec path");
        let all: Vec<&str> = [command, "-f", spec].into_iter().chain(args.iter().copied()).collect();
        slurmbox(Some(&self.path), &all, stdin)
    }

    fn up(&self) -> Run {
        self.run("up", &[], "")
    }

    fn down(&self) {
        self.run("down", &["--purge", "--yes"], "");
    }

    /// `up` that must send the image to exactly `hosts`; returns the run and the seconds
    /// of each send.
    fn up_sending(&self, hosts: &[&str]) -> (Run, Vec<(String, f64)>) {
        let run = self.up();
        let mut sent = image_sends(&run.stderr, "Image on ");
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = sent.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(names, hosts, "hosts the image was sent to; up printed:\n{}", run.stderr);
        (run, sent)
    }

    /// Runs a bash script as the default user on the login node, in their home.
    fn bash(&self, script: &str, stdin: &str) -> Run {
        self.run("exec", &["--", "bash", "-c", script], stdin)
    }

    /// Writes `text` to `path` under the default user's home, as that user.
    fn write_home_file(&self, path: &str, text: &str) {
        self.bash(&format!("mkdir -p \"$(dirname '{path}')\" && cat > '{path}'"), text);
    }

    /// Submits the pi program as `ranks` ranks on `nodes` nodes, and waits for it.
    /// `--map-by node` deals the ranks out to the nodes in turn, so that fewer ranks than
    /// CPUs still reach every node.
    fn pi_job(&self, nodes: usize, ranks: usize) -> PiJob {
        let job = format!("pi-{nodes}x{ranks}");
        let script = format!(
            "#!/bin/bash\n#SBATCH --job-name=bench-pi\n#SBATCH --nodes={nodes}\n#SBATCH --ntasks={ranks}\n\
             #SBATCH --time=3\n#SBATCH --output={job}.out\ncd \"$SLURM_SUBMIT_DIR\"\n\
             t0=$(date +%s.%N)\nmpiexec -n {ranks} --map-by node python3 pi.py\necho \"mpiexec=$t0 $(date +%s.%N)\"\n"
        );
        let run = self.bash(
            &format!(
                "cd {WORKDIR} && cat > {job}.sbatch && rm -f {job}.out && echo \"submitted=$(date +%s.%N)\" && \
                 {{ timeout 240 sbatch --wait --quiet {job}.sbatch || rc=$?; }} && cat {job}.out; exit ${{rc:-0}}"
            ),
            &script,
        );
        PiJob::parse(&run.stdout, nodes, ranks)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let spec = self.spec.to_str().expect("utf-8 spec path");
        let out = Command::new(BIN)
            .args(["down", "--purge", "--yes", "--quiet", "-f", spec])
            .env("PATH", &self.path)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!("cleanup: down --purge -f {spec} failed: {}", String::from_utf8_lossy(&out.stderr))
            }
            Err(e) => eprintln!("cleanup: cannot run slurmbox down -f {spec}: {e}"),
        }
    }
}

/// Seconds of one MPI pi job.
struct PiJob {
    /// `mpiexec` alone, timed inside the job.
    mpiexec: f64,
    /// From just before `sbatch` on the login node to the end of `mpiexec`.
    total: f64,
}

impl PiJob {
    /// Reads the job's output (`submitted=T`, `mpiexec=START END`, and pi.py's `ranks=`,
    /// `hosts=`, `pi=`); panics unless the job computed pi with `ranks` ranks on `nodes`
    /// hosts.
    fn parse(out: &str, nodes: usize, ranks: usize) -> PiJob {
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key}= in the job's output:\n{out}"))
        };
        let times = |key: &str| -> Vec<f64> {
            value(key).split(' ').map(|t| t.parse().unwrap_or_else(|_| panic!("{key}={t}?\n{out}"))).collect()
        };
        let pi: f64 = value("pi").parse().unwrap_or(f64::NAN);
        assert!((pi - std::f64::consts::PI).abs() < 5e-11, "pi is off:\n{out}");
        assert_eq!(value("ranks"), ranks.to_string(), "{out}");
        assert_eq!(value("hosts").split(',').count(), nodes, "{out}");
        let (submitted, mpiexec) = (times("submitted"), times("mpiexec"));
        assert!(submitted.len() == 1 && mpiexec.len() == 2, "{out}");
        PiJob { mpiexec: mpiexec[1] - mpiexec[0], total: mpiexec[1] - submitted[0] }
    }

    /// "mpiexec median 0.72 s (runs: …), submit to done median 1.10 s (runs: …)".
    fn summary(jobs: &[PiJob]) -> String {
        let mpiexec: Vec<f64> = jobs.iter().map(|j| j.mpiexec).collect();
        let total: Vec<f64> = jobs.iter().map(|j| j.total).collect();
        format!(
            "mpiexec median {:.2} s (runs: {}), submit to done median {:.2} s (runs: {})",
            median(&mpiexec),
            runs(&mpiexec),
            median(&total),
            runs(&total)
        )
    }
}

/// The hosts and seconds of each ` ✓ Image on HOST (sent, 12.3s)` line of `up`'s
/// progress (`step` is "Image on ", or "Storage image on "), in the order the sends
/// finished.
fn image_sends(stderr: &str, step: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|line| {
            let (host, detail) = line.split_once(&format!(" ✓ {step}"))?.1.split_once(" (sent, ")?;
            Some((host.to_string(), detail.strip_suffix("s)")?.parse().ok()?))
        })
        .collect()
}

/// Size of `image` in lab host 0's engine, in MB.
fn image_size_mb(lab: &Lab, image: &str) -> f64 {
    let bytes = lab.ssh_ok(0, &format!("docker image inspect --format '{{{{.Size}}}}' {image}"));
    bytes.trim().parse::<f64>().expect("image size in bytes") / 1e6
}

/// "12.3 s to pi2, 12.9 s to pi3".
fn sends(sent: &[(String, f64)]) -> String {
    sent.iter().map(|(host, s)| format!("{s:.1} s to {host}")).collect::<Vec<_>>().join(", ")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn runs(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", ")
}

/// A progress line on stderr, between slurmbox's own.
fn note(what: &str) {
    eprintln!("== multihost bench: {what}");
}
