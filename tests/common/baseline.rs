//! The slurmbox binary of a past release, built from this repository's git history:
//! the tests that upgrade a running cluster bring it up with that binary first.
//!
//! The release's sources are extracted with `git archive` under the target directory
//! and built with the same target directory as the current build, so the dependencies
//! (the same Cargo.lock) are compiled once and only the slurmbox crate is compiled
//! again. Its binary is renamed in the extracted manifest: built under its own name it
//! would replace the current build's `target/debug/slurmbox`. The finished binary is
//! kept as `target/baseline-<release>/slurmbox` and reused by later runs;
//! `SLURMBOX_BASELINE_BIN` names a ready-made one instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The release whose running clusters every later build must leave running: the last
/// release before the code was reshaped (issue 20).
pub const BASELINE: &str = "dac50b2";

/// The baseline release's slurmbox binary, built on first use (once per process; other
/// processes wait behind a lock file).
pub fn baseline_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("SLURMBOX_BASELINE_BIN") {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "SLURMBOX_BASELINE_BIN={} is not a file", path.display());
            return path;
        }
        build(BASELINE)
    })
    .clone()
}

/// Runs the baseline release's `slurmbox ARGS...`.
pub fn baseline_slurmbox(args: &[&str]) -> super::Run {
    let bin = baseline_bin();
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    super::Run::from(out)
}

/// The target directory this test was built in (the parent of cargo's `target/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir above CARGO_TARGET_TMPDIR")
        .to_path_buf()
}

fn git(args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"))
}

/// Panics, saying why and what to do, unless `release` is in this clone's history.
fn require_commit(release: &str) {
    let commit = format!("{release}^{{commit}}");
    if git(&["rev-parse", "--verify", "--quiet", &commit]).status.success() {
        return;
    }
    let shallow = git(&["rev-parse", "--is-shallow-repository"]);
    let why = if !shallow.status.success() {
        format!("{} is not a git clone", env!("CARGO_MANIFEST_DIR"))
    } else if String::from_utf8_lossy(&shallow.stdout).trim() == "true" {
        "this is a shallow clone (run `git fetch --unshallow`)".to_string()
    } else {
        "this clone lacks it (run `git fetch origin`)".to_string()
    };
    panic!(
        "the upgrade test needs slurmbox release {release} (the release whose clusters must \
         survive an upgrade) from git history, but {why}; or set SLURMBOX_BASELINE_BIN to a \
         slurmbox built from {release}"
    );
}

fn build(release: &str) -> PathBuf {
    let target = target_dir();
    let dir = target.join(format!("baseline-{release}"));
    let bin = dir.join("slurmbox");
    if bin.is_file() {
        return bin;
    }
    require_commit(release);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let lock_path = dir.join("build.lock");
    let lock =
        std::fs::File::create(&lock_path).unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    // Another process may have built it while this one waited for the lock.
    if bin.is_file() {
        return bin;
    }
    let started = Instant::now();

    // The release's tree, fresh: whatever an interrupted build left goes first.
    let src = dir.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).unwrap_or_else(|e| panic!("remove {}: {e}", src.display()));
    }
    std::fs::create_dir_all(&src).unwrap();
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(["archive", "--format=tar", release])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run git archive");
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&src)
        .stdin(archive.stdout.take().unwrap())
        .status()
        .expect("run tar");
    let archived = archive.wait().expect("wait for git archive");
    assert!(archived.success() && untar.success(), "git archive {release} | tar -x: {archived}, {untar}");

    // Its own workspace (not one above it), and a binary named apart from the current
    // build's: cargo copies each binary to target/debug/<its name>.
    let name = format!("slurmbox-{release}");
    let manifest = src.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen("[package]\n", "[package]\nautobins = false\n", 1)
        + &format!("\n[workspace]\n\n[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n");
    std::fs::write(&manifest, text).unwrap();

    eprintln!("building slurmbox {release} (the upgrade baseline) in {}", src.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--locked", "--bin", &name, "--target-dir"])
        .arg(&target)
        .current_dir(&src)
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of slurmbox {release} in {} failed: {status}", src.display());

    // Kept under the folder as `slurmbox`, moved into place whole.
    let built = target.join("debug").join(&name);
    let partial = dir.join("slurmbox.partial");
    std::fs::copy(&built, &partial).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    std::fs::rename(&partial, &bin).unwrap();
    eprintln!("built slurmbox {release} in {:.1?}", started.elapsed());
    drop(lock);
    bin
}
