//! One ssh connection per remote host, for every request slurmbox sends its engine.
//!
//! `ssh://user@host` engines are reached through the system `ssh` (the first one on
//! PATH), so the user's own `~/.ssh/config`, keys, agent and known_hosts apply. It is
//! started once per host and per slurmbox run:
//!
//! ```text
//! ssh -N -L /tmp/slurmbox-ssh-XXXX/docker.sock:/var/run/docker.sock user@host
//! ```
//!
//! and bollard talks to the local end of that forward as to any local engine
//! (`Docker::connect_with_unix`). Each HTTP connection hyper opens is a channel inside
//! the one ssh connection: sshd sees one TCP connection and one login, however many
//! requests run at once.
//!
//! Why a forwarded socket rather than bollard's own ssh transport or OpenSSH
//! connection sharing with `docker system dial-stdio`:
//! - bollard's transport starts a new ssh master (a TCP connection and a login) for
//!   every HTTP connection; sshd's default `MaxStartups 10:30:100` drops some of them
//!   when an `up` opens many at once (issue 13: `kex_exchange_identification:
//!   Connection closed by remote host`).
//! - `dial-stdio` sessions over a ControlMaster run one remote `docker` process per
//!   HTTP connection, each a session channel, and sshd allows 10 sessions per
//!   connection (`MaxSessions`); forwarded sockets are not sessions and have no such
//!   limit. It also needs the docker CLI on the host, and leaves a master behind when
//!   ControlPersist outlives slurmbox.
//! - the forward needs nothing on the host but sshd with stream-local forwarding,
//!   which is allowed by default (`AllowStreamLocalForwarding yes`).
//!
//! The socket lives in a private folder (mode 0700) that is removed with the tunnel.
//! Connection sharing of the user's config is turned off for this ssh (`ControlPath
//! none`): the forward must belong to this process, not to a master that outlives it.
//! ssh is killed when the tunnel is dropped, and by the kernel if slurmbox itself dies
//! (Linux: the parent-death signal), so no ssh is ever left behind.
//!
//! ssh's stderr is read by slurmbox, never shown as is: each line is logged at debug
//! level (`-vv` or `SLURMBOX_LOG=debug` shows them), and the last one is the reason
//! given when the host cannot be reached. A refusal while the connection is being set
//! up (`kex_exchange_identification`, a reset or closed connection: a busy sshd) is
//! tried again, with back-off; anything else (a wrong key, an unknown host, no route)
//! fails at once.
//!
//! The engine's socket on the host is `/var/run/docker.sock` unless the URL names
//! another (rootless Docker: `ssh://user@host/run/user/1000/docker.sock`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Pauses before each new try of a connection that sshd refused while it was set up.
const BACKOFF: &[Duration] = &[
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// What ssh prints when sshd drops a connection before the login (MaxStartups, a
/// restarting or overloaded sshd): worth another try.
const TRANSIENT: &[&str] =
    &["kex_exchange_identification", "Connection reset by peer", "Connection closed by", "banner exchange"];

/// Lines of ssh's stderr kept for error messages.
const KEPT_LINES: usize = 20;

/// The parts of an `ssh://[user@]host[:port][/socket]` URL, as the spec reads them.
pub type SshTarget = crate::spec::SshUrl;

impl SshTarget {
    /// ssh's arguments for the tunnel, `local` being the forward's local socket.
    pub fn args(&self, local: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-N",
            "-T",
            // Never a prompt: a key, the agent or nothing.
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            // This process's own connection, whatever the user's config shares.
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "ConnectTimeout=10",
            // A host that falls off the network is noticed within 15 s.
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "StreamLocalBindUnlink=yes",
            // What slurmbox reads (a refused forward is an INFO line); never shown raw.
            "-o",
            "LogLevel=INFO",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.push("-L".into());
        args.push(format!("{}:{}", local.display(), self.remote_socket));
        args.push("--".into());
        args.push(self.destination.clone());
        args
    }
}

/// A running `ssh -N -L` to one host; ssh is killed when this is dropped.
pub struct SshTunnel {
    /// The forward's local end, which bollard connects to.
    socket: PathBuf,
    /// Kept for `kill_on_drop`.
    _child: Child,
    /// The last lines ssh printed.
    stderr: Arc<Mutex<Vec<String>>>,
    /// The private folder holding `socket`; removed on drop.
    _dir: tempfile::TempDir,
}

impl SshTunnel {
    /// Starts ssh and returns once the forward is listening (ssh has logged in), trying
    /// again with back-off when sshd drops the connection before the login. The error
    /// is ssh's own last line, without its `ssh: ` prefix.
    pub async fn open(target: &SshTarget) -> Result<SshTunnel, String> {
        let mut pauses = BACKOFF.iter();
        loop {
            match Self::try_open(target).await {
                Ok(tunnel) => return Ok(tunnel),
                Err(line) => match pauses.next() {
                    Some(pause) if TRANSIENT.iter().any(|t| line.contains(t)) => {
                        tracing::debug!(host = %target.destination, "ssh refused ({line}); again in {pause:?}");
                        tokio::time::sleep(*pause).await;
                    }
                    _ => return Err(line),
                },
            }
        }
    }

    async fn try_open(target: &SshTarget) -> Result<SshTunnel, String> {
        let dir = tempfile::Builder::new()
            .prefix("slurmbox-ssh-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot make a private folder for the ssh tunnel: {e}"))?;
        let socket = dir.path().join("docker.sock");
        let mut cmd = Command::new("ssh");
        cmd.args(target.args(&socket))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot run ssh: {e}"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let (kept, host) = (stderr.clone(), target.destination.clone());
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "slurmbox::ssh", host = %host, "{line}");
                let mut kept = kept.lock().expect("not poisoned");
                kept.push(line);
                if kept.len() > KEPT_LINES {
                    kept.remove(0);
                }
            }
        });
        // ssh listens on the local end only after it has logged in. The socket file
        // appears a moment before ssh listens on it (bind, then listen): the tunnel is
        // open once a connection is taken.
        loop {
            if socket.exists() && tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(SshTunnel { socket, _child: child, stderr, _dir: dir });
            }
            if let Some(status) = child.try_wait().map_err(|e| format!("cannot wait for ssh: {e}"))? {
                // Everything ssh printed before it exited.
                let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
                let last = stderr.lock().expect("not poisoned").last().cloned();
                return Err(last.map_or_else(|| format!("ssh exited ({status})"), |l| tidy(&l)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The forward's local end.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// ssh's line about a forwarded connection the host refused (no engine socket
    /// there, or forwarding turned off), if it prints one within a second: ssh may
    /// close the connection before it says why.
    pub async fn forward_refusal(&self) -> Option<String> {
        for _ in 0..50 {
            let found = {
                let kept = self.stderr.lock().expect("not poisoned");
                kept.iter().rev().find(|l| l.contains("open failed")).map(|l| tidy(l))
            };
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// ssh's line without its `ssh: ` prefix.
fn tidy(line: &str) -> String {
    line.trim().trim_start_matches("ssh: ").to_string()
}

/// On Linux the kernel kills ssh when slurmbox dies, even by SIGKILL, so a forward is
/// never left running. (Elsewhere `kill_on_drop` covers every normal exit.)
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_is_one_forward_of_its_own() {
        let t = SshTarget::parse("ssh://pi@10.0.0.2:2222").unwrap();
        let args = t.args(Path::new("/tmp/x/docker.sock")).join(" ");
        assert!(args.starts_with("-N -T -o BatchMode=yes -o ExitOnForwardFailure=yes"), "{args}");
        assert!(args.contains("-o ControlPath=none"), "{args}");
        assert!(
            args.ends_with("-p 2222 -L /tmp/x/docker.sock:/var/run/docker.sock -- pi@10.0.0.2"),
            "{args}"
        );
    }

    #[test]
    fn ssh_lines_lose_their_prefix() {
        assert_eq!(
            tidy("ssh: connect to host 10.0.0.9 port 22: No route to host\r"),
            "connect to host 10.0.0.9 port 22: No route to host"
        );
    }
}
