//! Images the tests' own machines run (the lab's hosts, the LDAP server), built like
//! slurmbox builds its node images: mmdebstrap writes a Debian root filesystem as a
//! tar stream straight into `docker import`, no registry involved. Each is tagged with
//! a digest of its recipe and built once: tests in parallel threads and processes wait
//! for one build behind a lock file.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// What goes into one test image.
pub struct TestImage {
    /// `slurmbox-lab/host`; the tag is a digest of the rest.
    pub repository: &'static str,
    /// For messages: "lab host".
    pub what: &'static str,
    pub suite: &'static str,
    pub packages: &'static [&'static str],
    /// Shell run by mmdebstrap on the finished tree (`$1` is its root).
    pub customize: &'static [&'static str],
}

/// Runs `docker ARGS...` (the CLI on PATH, talking to the machine's engine).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// Runs `docker ARGS...` and returns its trimmed stdout; panics with its stderr on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `$HOME/.cache/slurmbox/NAME`, opened for locking (the folder is made if missing).
pub fn lock_file(name: &str) -> std::fs::File {
    let dir = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from).join(".cache/slurmbox");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

impl TestImage {
    /// mmdebstrap's arguments (all but the mirror, which does not change what gets
    /// installed) and the changes given to import.
    fn recipe(&self) -> (Vec<String>, Vec<String>) {
        let args = slurmbox::image::mmdebstrap_args(self.suite, self.packages, self.customize);
        (args, vec!["ENV LANG=C.UTF-8".to_string()])
    }

    /// `REPOSITORY:<12 hex digits of the recipe's digest>`.
    pub fn tag(&self) -> String {
        let (args, changes) = self.recipe();
        let mut h = Sha256::new();
        for part in args.iter().chain(&changes) {
            h.update([0]);
            h.update(part.as_bytes());
        }
        format!("{}:{}", self.repository, hex::encode(&h.finalize()[..6]))
    }

    /// Returns the image's tag, building it first if the engine lacks it.
    pub fn ensure(&self) -> String {
        let tag = self.tag();
        let exists = |tag: &str| docker(&["image", "inspect", "--format", "{{.Id}}", tag]).status.success();
        if exists(&tag) {
            return tag;
        }
        let name = format!("{}-build.lock", self.repository.rsplit('/').next().unwrap_or("image"));
        let lock = lock_file(&name);
        lock.lock().unwrap_or_else(|e| panic!("lock {name}: {e}"));
        // Another test may have built it while this one waited for the lock.
        if !exists(&tag) {
            let started = Instant::now();
            self.build(&tag);
            eprintln!("{}: built {tag} in {:.1?}", self.what, started.elapsed());
        }
        drop(lock);
        tag
    }

    /// The import is tagged only once mmdebstrap has succeeded: a stream cut short by
    /// a failure may still import, and must not carry the tag.
    fn build(&self, tag: &str) {
        let (mut args, changes) = self.recipe();
        // SLURMBOX_MIRROR is slurmbox's own setting for offline and proxied machines.
        args.push(std::env::var("SLURMBOX_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string()));
        let mut mmdebstrap = Command::new("mmdebstrap")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mmdebstrap (./scripts/prerequisites installs it): {e}"));
        // Keep mmdebstrap's last lines for the failure report; reading also keeps its
        // stderr pipe from filling up.
        let stderr = mmdebstrap.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tail.push(line);
                if tail.len() > 30 {
                    tail.remove(0);
                }
            }
            tail.join("\n")
        });
        let mut import = Command::new("docker");
        import.arg("import");
        for c in &changes {
            import.args(["--change", c]);
        }
        let message = format!("slurmbox {}", self.what);
        let import = import
            .args(["--message", &message, "-"])
            .stdin(mmdebstrap.stdout.take().unwrap())
            .output()
            .expect("run docker import");
        let status = mmdebstrap.wait().expect("wait for mmdebstrap");
        let tail = log.join().unwrap_or_default();
        let id = String::from_utf8_lossy(&import.stdout).trim().to_string();
        if !status.success() {
            if !id.is_empty() {
                let _ = docker(&["rmi", &id]);
            }
            panic!("mmdebstrap failed to build the {} image ({status}); its last lines:\n{tail}", self.what);
        }
        assert!(import.status.success(), "docker import failed: {}", String::from_utf8_lossy(&import.stderr));
        docker_ok(&["tag", &id, tag]);
    }
}
