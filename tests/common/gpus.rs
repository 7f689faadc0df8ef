//! Fake GPUs for tests on machines without one: device nodes with NVIDIA's major
//! number (195) in a folder the test owns, given to a cluster as `gpu_devices`. Opening
//! one without a driver fails with ENXIO ("No such device or address"); one the job was
//! not given fails with EPERM ("Operation not permitted", the device cgroup).

use std::path::Path;
use std::process::Command;

/// Character devices 195:0.. at `dir/nvidia0..`, mode 0666 like NVIDIA's own: made with
/// mknod, or, without the right to (not root), by a container of the node image, which
/// has it.
pub fn fake_gpus(dir: &Path, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("nvidia{i}"));
            let minor = i.to_string();
            let made = Command::new("mknod")
                .args(["-m", "666", path.to_str().unwrap(), "c", "195", &minor])
                .output()
                .expect("run mknod");
            if !made.status.success() {
                let image = super::node_image("24.11");
                let mount = format!("{}:/fake", dir.display());
                let file = format!("/fake/nvidia{i}");
                let out = Command::new("docker")
                    .args(["run", "--rm", "-v", &mount, "--entrypoint", "mknod", &image])
                    .args(["-m", "666", &file, "c", "195", &minor])
                    .output()
                    .expect("run docker");
                assert!(
                    out.status.success(),
                    "mknod in a container: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            path.to_str().unwrap().to_string()
        })
        .collect()
}
