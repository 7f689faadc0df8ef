//! Images where the engine reaches a registry, with mmdebstrap absent from PATH: a real
//! registry (Debian's `docker-registry`) on loopback, seeded with a Debian base image
//! (made by mmdebstrap, as Docker Hub's `debian` would be there). The engine builds the
//! storage image from it; `image push` puts it in the registry as a site's; and with the
//! image gone from the engine, `image build` with that registry pulls it instead of
//! building.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::images::{docker, docker_ok};
use common::slurmbox_env;

/// A registry on a free loopback port, stopped (its files removed) when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's package) runs; scripts/prerequisites installs it");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { child, addr, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps the engine's own storage image under a side tag while the test replaces and
/// removes it, and puts it back afterwards, even when the test fails.
struct Kept {
    tag: String,
    side: String,
}

impl Kept {
    fn new(tag: &str, side: &str) -> Kept {
        docker_ok(&["tag", tag, side]);
        Kept { tag: tag.into(), side: side.into() }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        docker(&["tag", &self.side, &self.tag]);
        docker(&["rmi", &self.side]);
    }
}

#[test]
fn without_mmdebstrap_images_come_from_a_registry() {
    let registry = Registry::start();
    let addr = &registry.addr;
    let storage =
        slurmbox_env(&["image", "build", "--storage", "--quiet"], &[]).ok().stdout.trim().to_string();
    let _kept = Kept::new(&storage, &format!("it-kept-{}:storage", std::process::id()));

    // Debian's base image in the registry, as a site mirroring Docker Hub's would have it.
    let base = format!("{addr}/debian");
    let seeded = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; mmdebstrap --variant=apt --quiet trixie - | docker import - {base}:trixie >/dev/null \
                 && docker push --quiet {base}:trixie >/dev/null && docker rmi {base}:trixie >/dev/null"
            ),
        ])
        .status()
        .unwrap();
    assert!(seeded.success(), "seeding the registry with a Debian base image");

    // No mmdebstrap on PATH (slurmbox talks to the engine only): the engine builds.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let env = [("PATH", path), ("SLURMBOX_BASE_IMAGE", base.as_str())];
    let built = slurmbox_env(&["image", "build", "--storage", "--force"], &env).ok();
    assert!(built.stderr.contains("built"), "{}", built.stderr);
    let label =
        docker_ok(&["image", "inspect", "-f", "{{index .Config.Labels \"io.slurmbox.recipe\"}}", &storage]);
    assert!(
        storage.ends_with(&format!("-{}", label.trim())),
        "{storage} carries its recipe's digest: {label}"
    );
    let parent = docker_ok(&["image", "inspect", "-f", "{{.Parent}} {{len .RootFS.Layers}}", &storage]);
    assert!(!parent.trim().ends_with(" 1"), "built in layers on the base image, not imported: {parent}");
    let version = docker_ok(&["run", "--rm", "--entrypoint", "glusterd", &storage, "--version"]);
    assert!(version.contains("glusterfs"), "{version}");
    let no_id =
        docker(&["run", "--rm", "--entrypoint", "test", &storage, "-e", "/var/lib/glusterd/glusterd.info"]);
    assert!(!no_id.status.success(), "the recipe's hooks ran: no glusterd identity in the image");

    // A site's registry: pushed there, then pulled instead of built.
    let site = format!("{addr}/site");
    let pushed = slurmbox_env(&["image", "push", "--storage", "--registry", &site], &env).ok().stdout;
    let remote = pushed.trim().to_string();
    assert!(remote.starts_with(&format!("{site}/storage:gluster-")), "{remote}");
    docker_ok(&["rmi", &storage, &remote]);
    let pulled = slurmbox_env(&["image", "build", "--storage", "--registry", &site], &env).ok();
    assert!(pulled.stderr.contains(&format!("pulled from {site}")), "{}", pulled.stderr);
    assert_eq!(pulled.stdout.trim(), storage);
    docker_ok(&["image", "inspect", &storage]);
    assert!(!docker(&["image", "inspect", &remote]).status.success(), "only slurmbox's own tag is left");
    // The base image the engine pulled is this test's to remove.
    docker(&["rmi", &format!("{base}:trixie")]);

    // Neither builder nor registry: the error says what would do.
    let none = [("PATH", path), ("SLURMBOX_BASE_IMAGE", "127.0.0.1:1/nothing")];
    let failed = slurmbox_env(&["image", "build", "--storage", "--force"], &none);
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("mmdebstrap is not installed"), "{}", failed.stderr);
}
