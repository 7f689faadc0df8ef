//! A "lab" of several machines on this one machine, for tests of multi-host clusters.
//!
//! Each lab host is a container with its own Docker engine and its own sshd, on its own
//! fixed address of a private Docker network the lab creates. slurmbox can deploy into
//! them over ssh exactly as it would to real machines: `ssh://root@IP` reaches a host's
//! inner engine, and `PATH=<lab wrapper dir>:$PATH` makes every program that runs `ssh`
//! (the docker CLI, slurmbox) use the lab's key and settings.
//!
//! Nothing here touches the account's own ssh setup (`~/.ssh` of the passwd home, which
//! ssh reads whatever `$HOME` says): each lab makes its own key pair, known-hosts file
//! and client config in a temporary folder that lives as long as the [`Lab`].
//!
//! The host image (`slurmbox-lab/host:<digest>`) is built once per recipe from Debian's
//! archive with mmdebstrap, streamed into `docker import`; no registry is needed. It
//! holds no private key: every host makes its own ssh host keys when it starts.
//!
//! The inner engines keep their storage in one volume of the machine's engine, the
//! store (`slurmbox-lab-store`), which also holds the seeds that hosts start from with
//! slurmbox's images already there (see [`Seeds`]): [`Lab::start_empty`] for engines
//! with no image at all.
//!
//! Dropping a [`Lab`] removes its containers, their engines' storage and its network,
//! on success and on panic alike. Leftovers of a killed test run carry the label
//! `io.slurmbox.lab`: `docker rm -f -v $(docker ps -aq --filter label=io.slurmbox.lab)`
//! and `docker network rm $(docker network ls -q --filter label=io.slurmbox.lab)`; the
//! next lab removes their storage, and `docker volume rm slurmbox-lab-store` the seeds.

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Repository of the lab host image; the tag is a digest of the recipe below.
const IMAGE_REPOSITORY: &str = "slurmbox-lab/host";
const SUITE: &str = "trixie";

/// Debian packages of a lab host: an engine (daemon and CLI: the CLI also serves
/// `docker system dial-stdio`, which `ssh://` engine URLs run on the far side), sshd,
/// and the tools tests use on the hosts.
const PACKAGES: &[&str] = &[
    "docker.io",
    // Debian trixie ships the docker CLI in its own package; docker.io alone has only dockerd.
    "docker-cli",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "procps",
    // `mount --make-rshared /` at start (see HOST_START).
    "mount",
];

/// Shell run by mmdebstrap on the finished tree (`$1` is its root).
const CUSTOMIZE: &[&str] = &[
    // Root logs in with a key only, no passwords anywhere: what an admin sets on a real
    // machine too. Everything else is sshd's default (MaxStartups 10:30:100, MaxSessions
    // 10), as on the hosts slurmbox meets: the tests must hold against those.
    r#"printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' > "$1/etc/ssh/sshd_config.d/slurmbox-lab.conf""#,
    // Host keys baked into the image would be shared by every host made from it; each
    // host makes its own at start (`ssh-keygen -A` in HOST_START).
    r#"rm -f "$1"/etc/ssh/ssh_host_*"#,
    // Where the lab's public key is copied before a host starts.
    r#"mkdir -p -m 700 "$1/root/.ssh""#,
    // The image must hold no private key at all: fail the build if one slipped in.
    // (Its output goes to stderr: stdout is the image's tar stream.)
    r#"if grep -rlsI -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e 'PRIVATE KEY-----' "$1" >&2; then echo 'private key in the lab image' >&2; exit 1; fi"#,
];

/// What each host runs as its main process. `{cgroup}` is replaced by a name unique to
/// the host: with the host's cgroup tree mounted read-write (cgroup v1 here), inner
/// engines using the default `/docker` parent would share it with the outer engine's.
/// The inner engine cannot turn IPv6 off on its containers' interfaces (the lab host's
/// /proc/sys is read-only), which Docker 26 treats as fatal unless told to go on.
/// Its root is made a shared mount, as systemd makes a real machine's: the GlusterFS
/// /home reaches node containers through mount propagation. sshd logs every connection
/// it sees (LogLevel VERBOSE) to [`SSHD_LOG`], which tests count. The engine keeps its
/// storage in the store (`{root}`, see [`Seeds`]), made at the first start from the seed
/// `{seed}` (none when empty) and kept across restarts, as a machine keeps its disk.
const HOST_START: &str = "ssh-keygen -A >/dev/null && mkdir -p /run/sshd && \
     /usr/sbin/sshd -E /var/log/sshd.log -o LogLevel=VERBOSE && \
     mount --make-rshared / && \
     if [ ! -d {root} ]; then rm -rf {root}.new && mkdir -p {root}.new && {copy} mv {root}.new {root}; fi && \
     exec env DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1 dockerd --cgroup-parent=/{cgroup} --data-root={root}";

/// Shell that copies the seed `{seed}` into the new engine storage `{root}.new`: every
/// file but the layers' contents copied, the layers' contents (`overlay2/ID/diff`, which
/// an engine never writes to once a layer is made) as hard links. Ends with `&&`.
const SEED_COPY: &str = "tar -C {seed} --exclude='./overlay2/*/diff' -cf - . | tar -C {root}.new -xpf - && \
     for d in {seed}/overlay2/*/diff; do cp -al \"$d\" \"{root}.new/${d#{seed}/}\" || exit 1; done &&";

/// The Docker volume that holds the seeds (engine storages with images loaded, one per
/// set of images) and every lab host's engine storage, mounted at [`STORE_MOUNT`] in
/// hosts. Hosts' storages share the seeds' layer files through hard links, which work
/// only within one file system: hence one volume for both.
const STORE_VOLUME: &str = "slurmbox-lab-store";
const STORE_MOUNT: &str = "/store";

/// sshd's log on each host (see HOST_START).
pub const SSHD_LOG: &str = "/var/log/sshd.log";

/// How long a host's inner engine may take to answer over ssh after the container starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Address of the first host within the lab's /24; host i gets `.HOST_OFFSET + i`.
const HOST_OFFSET: u32 = 11;

/// One machine of the lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// Short name within the lab: `host0`, `host1`, ... (the index of [`Lab::hosts`]).
    pub name: String,
    /// The container's name on the outer engine (`<lab>-host0`); also its hostname.
    pub container: String,
    /// Its fixed address on the lab network.
    pub ip: Ipv4Addr,
}

/// A private network with `hosts` machines on it, each with its own Docker engine and
/// sshd. Removed, with everything in it, when dropped.
pub struct Lab {
    /// Unique name of this lab; also the network's name and the containers' prefix.
    pub name: String,
    hosts: Vec<LabHost>,
    /// Key pair, ssh client config, known-hosts file and the `ssh` wrapper.
    dir: TempDir,
    /// The host image, which also runs the store's housekeeping.
    image: String,
    /// Held while the lab exists: one lab at a time on this machine (see [`run_lock`]).
    _turn: std::fs::File,
}

/// Where every lab host sees the folder all hosts share (see [`Lab::shared_dir`]).
pub const SHARED_MOUNT: &str = "/gfsv";

use super::images::{docker, docker_ok};

/// A lab name no other lab of this run or another one uses: the process id, a counter
/// within the process, and a few bits of the clock against pid reuse across runs.
fn unique_lab_name(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("lab-{tag}-{}-{n}-{:04x}", std::process::id(), nanos & 0xffff)
}

/// The lab host image.
const IMAGE: super::images::TestImage = super::images::TestImage {
    repository: IMAGE_REPOSITORY,
    what: "lab host",
    suite: SUITE,
    packages: PACKAGES,
    customize: CUSTOMIZE,
};

/// `slurmbox-lab/host:<12 hex digits of the recipe's digest>`.
pub fn host_image_tag() -> String {
    IMAGE.tag()
}

use super::images::lock_file;

/// Waits for this machine's turn to run a lab and returns the lock that holds it.
/// A lab runs several engines and a whole cluster; two at once on a small CI machine
/// starve each other (sshd too slow to answer, controllers missing their timeouts), so
/// tests in every thread and process take turns.
fn run_lock() -> std::fs::File {
    let lock = lock_file("lab-run.lock");
    lock.lock().expect("lock lab-run.lock");
    lock
}

/// Returns the lab host image's tag, building the image first if the engine lacks it
/// (once, whatever runs in parallel).
pub fn ensure_host_image() -> String {
    IMAGE.ensure()
}

/// How long a test waits for the arm64 image that scripts/test builds beside the tests
/// (about 14 minutes alone on a 2-core machine, longer beside the tests).
const ARM64_BUILD_TIMEOUT: Duration = Duration::from_secs(50 * 60);

/// Waits until the arm64 node image that scripts/test builds beside the tests is built
/// (`SLURMBOX_TEST_ARM64_BUILD`: the build writes its exit status to that path plus
/// `.rc`, its output to `.log`); returns at once when no such build runs, as when a test
/// is run by hand (its `up` then builds the image itself). Call it before
/// [`Lab::start`], which would hold the machine's lab turn while waiting. Panics with the
/// end of the build's log if the build failed or did not end in time.
pub fn await_arm64_image() {
    let Some(prefix) = std::env::var_os("SLURMBOX_TEST_ARM64_BUILD") else { return };
    let with = |ext: &str| {
        let mut path = prefix.clone();
        path.push(ext);
        PathBuf::from(path)
    };
    let (rc, log) = (with(".rc"), with(".log"));
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| format!("(cannot read it: {e})"));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let started = Instant::now();
    let mut said = false;
    loop {
        if let Ok(status) = std::fs::read_to_string(&rc) {
            let status = status.trim();
            assert!(
                status == "0",
                "the arm64 image's build beside the tests failed (exit {status}); the end of {}:\n{}",
                log.display(),
                tail()
            );
            if said {
                eprintln!("the arm64 image is built; waited {:.0?}", started.elapsed());
            }
            return;
        }
        assert!(
            started.elapsed() < ARM64_BUILD_TIMEOUT,
            "the arm64 image's build beside the tests has not ended after {ARM64_BUILD_TIMEOUT:?}; the end of {}:\n{}",
            log.display(),
            tail()
        );
        if !said {
            eprintln!("waiting for the arm64 image scripts/test is building ({})", log.display());
            said = true;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Runs `script` with sh in a throwaway container of the host image that mounts the
/// store, for the store's housekeeping.
fn store_sh(image: &str, script: &str) -> Output {
    let store = format!("{STORE_VOLUME}:{STORE_MOUNT}");
    #[rustfmt::skip]
    let args = [
        "run", "--rm", "--label", "io.slurmbox.lab=store", "--network", "none",
        "-v", &store, image, "sh", "-c", script,
    ];
    docker(&args)
}

/// Like [`store_sh`]; panics with its stderr on failure.
fn store_sh_ok(image: &str, script: &str) {
    let out = store_sh(image, script);
    assert!(
        out.status.success(),
        "`{script}` on the lab store failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The arguments of `docker create`/`run` that let a container of the host image run
/// an engine of its own: every capability but SYS_RESOURCE, which this machine does
/// not have (so --privileged fails here), no seccomp or AppArmor filter, the cgroup tree
/// writable for the inner containers, and the store mounted.
fn engine_host_args() -> Vec<String> {
    #[rustfmt::skip]
    let args = [
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs", "/run",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["-v".to_string(), format!("{STORE_VOLUME}:{STORE_MOUNT}")]);
    args
}

/// What the hosts' engines start with: host 0 (where every lab cluster's controller
/// runs) with the images a default cluster runs there, the other hosts with the node
/// image; all of them with the GlusterFS storage image (the shared /home's and the
/// controllers' state's); slurmbox sends whatever else a cluster needs, as to any host. Each set is
/// loaded once into a seed (an engine's storage in the store, made again when an image
/// changes); a host's storage starts as a copy of its seed whose layer files are hard
/// links, so a host has its images in about a second instead of receiving them over ssh.
struct Seeds {
    controller_host: String,
    other_hosts: String,
}

impl Seeds {
    /// Makes the seeds that are not in the store yet. Runs in the lab's turn: making
    /// one loads images into an engine, too much beside another lab.
    fn ensure(image: &str) -> Seeds {
        let tag = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_slurmbox"))
                .args(["image", "build", "--quiet"])
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run slurmbox image build");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "slurmbox image build {args:?} failed: {stderr}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let node = tag(&["--slurm", "24.11"]);
        let storage = tag(&["--storage"]);
        let controller_host = [
            node.clone(),
            tag(&["--controller", "--slurm", "24.11"]),
            tag(&["--accounting", "--slurm", "24.11"]),
            tag(&["--metrics"]),
            tag(&["--web"]),
            storage.clone(),
        ];
        Seeds {
            controller_host: ensure_seed(image, "controller-host", &controller_host),
            other_hosts: ensure_seed(image, "other-hosts", &[node, storage]),
        }
    }
}

/// Removes the seeder's container when dropped, on panic too.
struct Seeder(String);

impl Drop for Seeder {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.0]);
        remove_cgroup_parent(&self.0);
    }
}

/// Returns the folder (under `STORE_MOUNT/seeds`) of the seed of `images` named `name`,
/// making it first when the store lacks it: an engine run on the store loads the images,
/// stops, and its storage becomes the seed. Older seeds of that name are removed.
fn ensure_seed(image: &str, name: &str, images: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(image.as_bytes());
    for i in images {
        h.update([0]);
        h.update(i.as_bytes());
        h.update(docker_ok(&["image", "inspect", "--format", "{{.Id}}", i]).as_bytes());
    }
    let dir = format!("{name}-{}", hex::encode(&h.finalize()[..6]));
    let path = format!("{STORE_MOUNT}/seeds/{dir}");
    if store_sh(image, &format!("test -d {path}")).status.success() {
        return dir;
    }
    let started = Instant::now();
    let seeder = Seeder(format!("slurmbox-lab-seeder-{}", std::process::id()));
    let start = format!(
        "rm -rf {path}.new && mkdir -p {path}.new && \
         exec env DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1 dockerd --cgroup-parent=/{} --data-root={path}.new",
        seeder.0
    );
    let mut args: Vec<String> = ["run", "-d", "--name", &seeder.0, "--label", "io.slurmbox.lab=seeder"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(engine_host_args());
    args.extend([image, "sh", "-c", &start].iter().map(|a| a.to_string()));
    docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let deadline = Instant::now() + READY_TIMEOUT;
    while docker(&["exec", &seeder.0, "docker", "info", "--format", "{{.ServerVersion}}"])
        .stdout
        .trim_ascii()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the lab's seeder engine did not start in {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    for i in images {
        pipe_image(
            i,
            Command::new("docker").args(["exec", "-i", &seeder.0, "docker", "load"]),
            "the lab's seeder",
        );
    }
    // The engine's storage is whole once it has stopped.
    docker_ok(&["stop", "--time", "60", &seeder.0]);
    let exit = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &seeder.0]);
    assert_eq!(
        exit,
        "0",
        "the lab's seeder engine did not stop cleanly: {}",
        String::from_utf8_lossy(&docker(&["logs", "--tail", "20", &seeder.0]).stderr)
    );
    store_sh_ok(
        image,
        &format!(
            "cd {STORE_MOUNT}/seeds && for s in {name}-*; do [ \"$s\" = {dir}.new ] || rm -rf \"$s\"; done && mv {dir}.new {dir}"
        ),
    );
    eprintln!("lab: seed {dir} ({}) made in {:.1?}", images.join(", "), started.elapsed());
    dir
}

/// `docker save IMAGE | LOAD`, where `LOAD` runs `docker load` in some engine; `what`
/// names that engine in the panic when either side fails.
fn pipe_image(image: &str, load: &mut Command, what: &str) {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker save");
    let load = load.stdin(save.stdout.take().unwrap()).output().expect("run docker load");
    let mut save_err = String::new();
    save.stderr.take().unwrap().read_to_string(&mut save_err).unwrap();
    let save_status = save.wait().unwrap();
    assert!(save_status.success(), "docker save {image} failed: {save_err}");
    assert!(
        load.status.success(),
        "docker load of {image} on {what} failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );
}

/// An IPv4 block `a.b.c.d/len` as the range of addresses it covers.
/// A bare address (a host route) counts as a /32.
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let start = u32::from(addr) & mask;
    Some((start, start | !mask))
}

/// IPv4 blocks already in use on this machine: the subnets of every Docker network and
/// every route of the machine itself (its LAN, a VPN).
fn used_blocks() -> Vec<(u32, u32)> {
    let mut text = String::new();
    let ids = docker_ok(&["network", "ls", "-q"]);
    if !ids.is_empty() {
        let mut args = vec!["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"];
        args.extend(ids.lines());
        // A network removed meanwhile makes inspect fail for it; the others still print.
        text.push_str(&String::from_utf8_lossy(&docker(&args).stdout));
    }
    if let Ok(out) = Command::new("ip").args(["-4", "route", "show", "table", "all"]).output() {
        text.push(' ');
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text.split_whitespace().filter_map(parse_cidr).collect()
}

/// Free /24 blocks to try for a lab network, starting at an offset that differs
/// between labs so that labs started at the same moment rarely try the same one.
/// 10.213/16 first: Docker's own default pools are in 172.17-31/16 and 192.168/16.
fn candidate_subnets(seed: u32) -> Vec<u32> {
    let used = used_blocks();
    let mut out = Vec::new();
    for base in [Ipv4Addr::new(10, 213, 0, 0), Ipv4Addr::new(172, 29, 0, 0)] {
        for k in 0..256u32 {
            let start = u32::from(base) | (((k + seed % 256) % 256) << 8);
            let end = start | 0xff;
            if !used.iter().any(|&(s, e)| s <= end && start <= e) {
                out.push(start);
            }
        }
    }
    out
}

/// Creates the lab's network on a free /24 and returns that block's first address.
/// Another lab (or a cluster's network) may take a block between the listing and the
/// creation: the engine then refuses with "overlaps", and the next block is tried.
fn create_network(name: &str) -> u32 {
    let seed = std::process::id().wrapping_mul(31).wrapping_add(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() >> 10,
    );
    let label = format!("io.slurmbox.lab={name}");
    let mut last_error = String::from("no free /24 in 10.213/16 or 172.29/16");
    for start in candidate_subnets(seed).into_iter().take(20) {
        let subnet = format!("{}/24", Ipv4Addr::from(start));
        let out = docker(&[
            "network", "create", "--driver", "bridge", "--subnet", &subnet, "--label", &label, name,
        ]);
        if out.status.success() {
            return start;
        }
        last_error = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !last_error.contains("overlap") {
            break;
        }
    }
    panic!("cannot create the lab network {name}: {last_error}");
}

impl Lab {
    /// Starts a lab of `hosts` machines whose engines have slurmbox's images already
    /// (see [`Seeds`]); `tag` goes into the lab's unique name (use the test's name).
    /// Returns once every host's inner engine answers `docker info` over ssh.
    pub fn start(tag: &str, hosts: usize) -> Lab {
        Lab::start_with(tag, hosts, true)
    }

    /// Like [`Lab::start`], with every engine empty: for tests of how images reach hosts.
    pub fn start_empty(tag: &str, hosts: usize) -> Lab {
        Lab::start_with(tag, hosts, false)
    }

    fn start_with(tag: &str, hosts: usize, seeded: bool) -> Lab {
        let image = ensure_host_image();
        let turn = run_lock();
        docker_ok(&["volume", "create", "--label", "io.slurmbox.lab=store", STORE_VOLUME]);
        // No other lab runs now: any host storage in the store is a killed run's.
        store_sh_ok(&image, &format!("rm -rf {STORE_MOUNT}/hosts && mkdir -p {STORE_MOUNT}/hosts"));
        let seeds = seeded.then(|| Seeds::ensure(&image));
        let name = unique_lab_name(tag);
        let subnet = create_network(&name);
        let dir =
            tempfile::Builder::new().prefix("slurmbox-lab-").tempdir().expect("create the lab's tempdir");
        // From here on, dropping `lab` (a panic included) removes the network and every
        // host container of the list, created or not, with their storage.
        let lab = Lab {
            hosts: (0..hosts)
                .map(|i| LabHost {
                    name: format!("host{i}"),
                    container: format!("{name}-host{i}"),
                    ip: Ipv4Addr::from(subnet + HOST_OFFSET + i as u32),
                })
                .collect(),
            name,
            dir,
            image,
            _turn: turn,
        };
        lab.write_ssh_files();
        let seed = |i: usize| {
            seeds.as_ref().map(|s| if i == 0 { s.controller_host.as_str() } else { s.other_hosts.as_str() })
        };
        // Hosts start and boot their engines in parallel; a failure in any thread is
        // raised here with its own message, and `lab` is dropped on the way out.
        let (shared, seed) = (&lab, &seed);
        std::thread::scope(|s| {
            let starts: Vec<_> =
                (0..hosts).map(|i| s.spawn(move || shared.start_host(&shared.hosts[i], seed(i)))).collect();
            starts.into_iter().for_each(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        });
        let shared = &lab;
        std::thread::scope(|s| {
            let waits: Vec<_> = (0..hosts).map(|i| s.spawn(move || shared.wait_ready(i))).collect();
            waits.into_iter().for_each(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        });
        lab
    }

    /// Makes the lab's key pair, ssh client config and the `ssh` wrapper in its tempdir.
    fn write_ssh_files(&self) {
        let key = self.dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &self.name, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen");
        assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
        // The file copied into each host as root's authorized_keys; sshd insists that
        // it is not writable by others.
        let authorized = self.dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o600)).unwrap();

        // Given with -F, this file replaces both ~/.ssh/config and /etc/ssh/ssh_config.
        // Host keys are new for every lab, so they are learned on first contact, into a
        // known-hosts file of this lab only. No agent, no password prompt: a failure
        // shows at once instead of hanging a test.
        let config = format!(
            "Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             StrictHostKeyChecking accept-new\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  \
             BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 30\n  ServerAliveInterval 5\n  ServerAliveCountMax 6\n",
            key = key.display(),
            known = self.dir.path().join("known_hosts").display(),
        );
        std::fs::write(self.ssh_config(), config).unwrap();

        // Programs that run `ssh` from PATH (the docker CLI for ssh:// engines,
        // slurmbox) pick up the lab's settings through this wrapper.
        let bin = self.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let wrapper = bin.join("ssh");
        let script = format!("#!/bin/sh\nexec /usr/bin/ssh -F '{}' \"$@\"\n", self.ssh_config().display());
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Creates one host's container, copies the lab's public key into it and starts it.
    /// Its engine's storage starts as a copy of the seed `seed` (a folder of the store's
    /// seeds), or empty.
    fn start_host(&self, host: &LabHost, seed: Option<&str>) {
        let label = format!("io.slurmbox.lab={}", self.name);
        let ip = host.ip.to_string();
        let root = format!("{STORE_MOUNT}/hosts/{}", host.container);
        let copy = match seed {
            Some(seed) => SEED_COPY.replace("{seed}", &format!("{STORE_MOUNT}/seeds/{seed}")),
            None => String::new(),
        };
        let start =
            HOST_START.replace("{copy}", &copy).replace("{root}", &root).replace("{cgroup}", &host.container);
        let shared = format!("{}:{SHARED_MOUNT}", self.shared_dir().display());
        #[rustfmt::skip]
        let mut args: Vec<String> = [
            "create", "--name", &host.container, "--hostname", &host.container, "--label", &label,
            "--network", &self.name, "--ip", &ip,
            // FUSE, for a storage container's GlusterFS mount.
            "--device", "/dev/fuse",
            // One folder of this machine mounted at /gfsv on every host: the lab's
            // stand-in for the article's GlusterFS volume (a mount every host shares).
            "-v", &shared,
        ].iter().map(|a| a.to_string()).collect();
        // An engine inside a container, its storage in the store (overlay2 cannot stack
        // on the container's own overlay).
        args.extend(engine_host_args());
        args.extend([&self.image, "sh", "-c", &start].iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        let authorized = self.dir.path().join("authorized_keys");
        let authorized = authorized.to_str().expect("utf-8 tempdir path");
        // Files copied into a container belong to its root user; the mode (0600) is kept.
        docker_ok(&["cp", authorized, &format!("{}:/root/.ssh/authorized_keys", host.container)]);
        docker_ok(&["start", &host.container]);
    }

    /// Polls until host `i`'s inner engine answers over ssh; panics with the host's log
    /// after READY_TIMEOUT.
    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // `docker info` exits 0 even when it cannot reach the daemon; an empty
            // server version means the daemon is not up yet.
            let out = self.ssh(i, "docker info --format '{{.ServerVersion}}'");
            if out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let logs = docker(&["logs", "--tail", "30", &self.hosts[i].container]);
                panic!(
                    "lab host {} ({}) not ready after {READY_TIMEOUT:?}\n--- last ssh stderr\n{}\n--- container log\n{}{}",
                    self.hosts[i].container,
                    self.hosts[i].ip,
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr),
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The URL of host `i`'s inner engine: `ssh://root@IP`.
    pub fn engine_url(&self, i: usize) -> String {
        format!("ssh://root@{}", self.hosts[i].ip)
    }

    /// The ssh client config of this lab (key, user, known hosts, timeouts).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The folder holding the lab's `ssh` wrapper.
    pub fn wrapper_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The folder of this machine that every host mounts at [`SHARED_MOUNT`].
    pub fn shared_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("gfsv");
        std::fs::create_dir_all(&dir).expect("create the lab's shared folder");
        dir
    }

    /// A PATH with the lab's `ssh` wrapper first, for programs that should reach the
    /// lab's hosts: `Command::new(..).env("PATH", lab.path_env())`.
    pub fn path_env(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        format!("{}:{rest}", self.wrapper_dir().display())
    }

    /// The ssh command line for host `i`, up to the remote command.
    fn ssh_command(&self, i: usize) -> Command {
        let mut cmd = Command::new("/usr/bin/ssh");
        cmd.arg("-F").arg(self.ssh_config()).arg("--").arg(format!("root@{}", self.hosts[i].ip));
        cmd
    }

    /// Runs the shell command `cmd` on host `i` over ssh, as root. A connection that
    /// fails (ssh's own exit status 255, e.g. a busy machine's sshd answering late) is
    /// tried again, twice.
    pub fn ssh(&self, i: usize, cmd: &str) -> Output {
        let mut tries = 0;
        loop {
            let out = self.ssh_command(i).arg(cmd).stdin(Stdio::null()).output().expect("run ssh");
            tries += 1;
            if out.status.code() != Some(255) || tries == 3 {
                return out;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Like [`Lab::ssh`], and returns stdout; panics with everything printed on failure.
    pub fn ssh_ok(&self, i: usize, cmd: &str) -> String {
        let out = self.ssh(i, cmd);
        assert!(
            out.status.success(),
            "`{cmd}` on {} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            self.hosts[i].container,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many TCP connections host `i`'s sshd has seen so far: those it let in
    /// ("Connection from", logged at LogLevel VERBOSE) and those it dropped at once
    /// because too many were still logging in (MaxStartups). The lab's own `ssh` calls
    /// count too; this one reads the log through the outer engine, not over ssh.
    pub fn sshd_connections(&self, i: usize) -> usize {
        let log = docker_ok(&["exec", &self.hosts[i].container, "cat", SSHD_LOG]);
        log.lines().filter(|l| l.contains("Connection from ") || l.contains("past MaxStartups")).count()
    }

    /// Restarts host `i` (as after its admin changed the engine's settings and rebooted
    /// it) and waits until its engine answers again. What it keeps: its disk; what it
    /// loses: /dev and /run, as a machine does.
    pub fn restart_host(&self, i: usize) {
        docker_ok(&["restart", &self.hosts[i].container]);
        self.wait_ready(i);
    }

    /// Cuts host `i`'s power: every process on it dies at once, its engine and the
    /// containers of that engine with it (they live in the host's PID namespace), and it
    /// is gone from the network. Its disk stays, as a machine's does.
    pub fn power_off(&self, i: usize) {
        docker_ok(&["kill", &self.hosts[i].container]);
    }

    /// Powers host `i` on again, at the same address; returns once its engine answers
    /// (which starts the containers whose restart policy says so, as after a reboot).
    pub fn power_on(&self, i: usize) {
        docker_ok(&["start", &self.hosts[i].container]);
        self.wait_ready(i);
    }

    /// Unplugs host `i` from the lab network (a machine falling off the LAN).
    pub fn disconnect(&self, i: usize) {
        docker_ok(&["network", "disconnect", &self.name, &self.hosts[i].container]);
    }

    /// Plugs host `i` back in, at the same address.
    pub fn reconnect(&self, i: usize) {
        let ip = self.hosts[i].ip.to_string();
        docker_ok(&["network", "connect", "--ip", &ip, &self.name, &self.hosts[i].container]);
    }

    /// Copies `image` from the machine's engine into host `i`'s engine:
    /// `docker save IMAGE | ssh root@IP docker load`. (A test helper; slurmbox moves
    /// images its own way.)
    pub fn load_image(&self, i: usize, image: &str) {
        let what = self.hosts[i].container.clone();
        pipe_image(image, self.ssh_command(i).arg("docker load"), &what);
    }
}

/// Removes the cgroups a host's inner engine made under its own parent in the
/// machine's cgroup tree (it is mounted read-write into the host): the engine removes
/// its containers' cgroups, but never the parent. Best effort: other users and
/// cgroup namespaces may not see or may not be allowed to remove them.
fn remove_cgroup_parent(parent: &str) {
    fn remove_tree(dir: &Path) -> bool {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path());
                }
            }
        }
        std::fs::remove_dir(dir).is_ok()
    }
    let root = Path::new("/sys/fs/cgroup");
    // cgroup v2: /sys/fs/cgroup/PARENT; v1: /sys/fs/cgroup/<controller>/PARENT.
    let mut dirs = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(parent)));
    }
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        // Processes of inner containers may take a moment to leave after their host died.
        for _ in 0..20 {
            if remove_tree(dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let containers: Vec<&str> = self.hosts.iter().map(|h| h.container.as_str()).collect();
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&containers);
        let out = docker(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Containers a failed start never created are fine to miss.
        if !out.status.success() && stderr.lines().any(|l| !l.contains("No such container")) {
            eprintln!("lab {}: removing its hosts failed: {stderr}", self.name);
        }
        for c in &containers {
            remove_cgroup_parent(c);
        }
        // Their engines' storage (the layers' files stay in the seeds).
        let roots: Vec<String> = containers.iter().map(|c| format!("{STORE_MOUNT}/hosts/{c}")).collect();
        let out = store_sh(&self.image, &format!("rm -rf {}", roots.join(" ")));
        if !out.status.success() {
            eprintln!(
                "lab {}: removing its hosts' storage failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = docker(&["network", "rm", &self.name]);
        if !out.status.success() {
            eprintln!(
                "lab {}: removing its network failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
