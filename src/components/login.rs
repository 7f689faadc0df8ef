//! The login node: where users run `sbatch`, `srun` and `sinfo`. It runs munged and
//! sackd, which fetches the controller's files (configless); on a host's network,
//! where sackd would take the compute node's port, it gets its own copy of the files
//! and runs no Slurm daemon.
//!
//! Users reach it over ssh: sshd takes public keys only (from the accounts slurmbox
//! keeps, see [`super::users`], or the user's own `~/.ssh/authorized_keys`), no
//! passwords and no root, on `[login] ssh_port` of the controller's host. Its host keys
//! are made on first start into a volume of their own, so a recreated login node keeps
//! them and nobody is told the host key changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::{Config, Layout, NodeContainer, home, munge};
use crate::contract;
use crate::engine::{Engine, EngineError};
use crate::plan::{
    LABEL_CLUSTER, LABEL_ROLE, LABEL_SSH_PORT, MountPlan, MountSource, Plan, PlannedFile, PortPlan, Role,
    VolumePlan,
};
use crate::spec::DEFAULT_SSH_PORT;

fn host_keys_volume(layout: &Layout) -> String {
    format!("{}-login-ssh", layout.cluster)
}

/// sshd's settings: OpenSSH's defaults tightened as current hardening guides (Mozilla's
/// OpenSSH guidelines, ssh-audit's) ask, for a shared machine whose users log in with
/// keys and do nothing but run Slurm's commands and edit their files.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SshdConf {
    pub port: u16,
    /// The one address to listen on (on a host's network); `None`: all of the node's.
    pub listen: Option<IpAddr>,
    /// A command that prints a user's keys from a directory (LDAP's sshPublicKey).
    pub authorized_keys_command: Option<String>,
}

impl fmt::Display for SshdConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox: the login node's sshd.")?;
        writeln!(f, "Port {}", self.port)?;
        if let Some(address) = self.listen {
            writeln!(f, "ListenAddress {address}")?;
        }
        // Made on first start (slurmbox-init), kept in the login node's own volume.
        for kind in ["ed25519", "rsa"] {
            writeln!(f, "HostKey {}/ssh_host_{kind}_key", contract::SSH_HOST_KEYS)?;
        }
        let lines = [
            // Keys only: no passwords, no keyboard-interactive, no root.
            "PermitRootLogin no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitEmptyPasswords no",
            "AuthenticationMethods publickey",
            // No PAM: sshd itself then refuses locked accounts (`slurmbox user remove`),
            // and the container needs no audit capabilities.
            "UsePAM no",
            "StrictModes yes",
            "MaxAuthTries 3",
            "LoginGraceTime 30",
            // The keys slurmbox keeps for each user, then the user's own.
            &format!("AuthorizedKeysFile {}/ssh/%u .ssh/authorized_keys", contract::ACCOUNTS_DIR),
            // Nothing but a shell and its commands: no tunnels into the cluster network,
            // no agent or X11 forwarding.
            "AllowAgentForwarding no",
            "AllowTcpForwarding no",
            "AllowStreamLocalForwarding no",
            "GatewayPorts no",
            "PermitTunnel no",
            "X11Forwarding no",
            "PermitUserEnvironment no",
            "DisableForwarding yes",
            // Modern algorithms only (OpenSSH 9.2 and newer clients have all of these).
            "KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,\
             curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group18-sha512,\
             diffie-hellman-group16-sha512,diffie-hellman-group-exchange-sha256",
            "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,\
             aes256-ctr,aes192-ctr,aes128-ctr",
            "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
            "HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256",
            "PubkeyAcceptedAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,sk-ssh-ed25519@openssh.com,\
             rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,\
             sk-ecdsa-sha2-nistp256@openssh.com",
            "RequiredRSASize 3072",
            "ClientAliveInterval 300",
            "ClientAliveCountMax 2",
            "LogLevel VERBOSE",
        ];
        for line in lines {
            writeln!(f, "{line}")?;
        }
        if let Some(cmd) = &self.authorized_keys_command {
            writeln!(f, "AuthorizedKeysCommand {cmd}")?;
            // The command reads the bind password, which is root's alone.
            writeln!(f, "AuthorizedKeysCommandUser root")?;
        }
        Ok(())
    }
}

/// A published port of one role on its host: this cluster's now, and the other
/// clusters' (port → cluster), read from the label its containers carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishedPorts {
    pub own: Option<u16>,
    pub taken: BTreeMap<u16, String>,
}

/// What `engine`'s containers of `role` publish, by their `label`: the login node's
/// sshd ([`LABEL_SSH_PORT`]), slurmrestd ([`crate::plan::LABEL_REST_PORT`]), the
/// dashboard.
pub async fn published_ports<E: Engine>(
    engine: &E,
    cluster: &str,
    role: Role,
    label: &str,
) -> Result<PublishedPorts, EngineError> {
    let mut ports = PublishedPorts::default();
    for c in engine.list_labelled(LABEL_ROLE, role.as_str()).await? {
        let Some(port) = c.labels.get(label).and_then(|p| p.parse().ok()) else {
            continue;
        };
        match c.labels.get(LABEL_CLUSTER) {
            Some(other) if other != cluster => {
                ports.taken.insert(port, other.clone());
            }
            _ => ports.own = Some(port),
        }
    }
    Ok(ports)
}

/// Before anything changes: the port the plan's container of `role` publishes (its
/// `label`) is no other cluster's on that host; `key` and `what` name it in the error
/// ("[rest] port", "REST API"). `up` picks a free one where the spec names none.
pub async fn check_port_free<E: Engine>(
    engines: &[E],
    plan: &Plan,
    (role, label): (Role, &str),
    (key, what): (&'static str, &'static str),
) -> Result<(), super::PartError> {
    let Some(c) = plan.containers.iter().find(|c| c.role == role) else {
        return Ok(());
    };
    let Some(port) = c.labels.get(label).and_then(|p| p.parse().ok()) else {
        return Ok(());
    };
    match published_ports(&engines[c.host], &plan.cluster, role, label).await?.taken.remove(&port) {
        Some(other) => {
            Err(super::PartError::PortTaken { key, what, port, host: plan.hosts[c.host].name.clone(), other })
        }
        None => Ok(()),
    }
}

/// The port a service is published on: the spec's, else the one it has (so `up`
/// never moves it), else `default` or the first one after it that no other cluster on
/// the host holds and that is not in `avoid` (found in use by something else).
pub fn choose_port(
    default: u16,
    explicit: Option<u16>,
    ports: &PublishedPorts,
    avoid: &BTreeSet<u16>,
) -> u16 {
    if let Some(port) = explicit {
        return port;
    }
    let free = |p: &u16| !ports.taken.contains_key(p) && !avoid.contains(p);
    ports.own.filter(free).unwrap_or_else(|| (default..).find(free).expect("a free port"))
}

/// The login node's published ports on `engine`'s host: the one this cluster's login
/// node has now, and those other clusters' login nodes hold.
pub async fn ports<E: Engine>(engine: &E, cluster: &str) -> Result<PublishedPorts, EngineError> {
    published_ports(engine, cluster, Role::Login, LABEL_SSH_PORT).await
}

/// The port the login node's sshd is published on (see [`choose_port`]), from
/// [`DEFAULT_SSH_PORT`].
pub fn choose_ssh_port(explicit: Option<u16>, ports: &PublishedPorts, avoid: &BTreeSet<u16>) -> u16 {
    choose_port(DEFAULT_SSH_PORT, explicit, ports, avoid)
}

/// The sshd settings of a cluster's login node.
pub fn sshd_conf(layout: &Layout) -> SshdConf {
    SshdConf {
        port: layout.facts[layout.login.host].ssh_port,
        // On a host's network sshd has the host's addresses: listen where the spec says.
        listen: layout.spec.login.ssh_address.filter(|_| layout.on_host_network),
        authorized_keys_command: None,
    }
}

/// Capabilities the login node has beyond every node's: sshd confines its
/// pre-authentication process in an empty folder (chroot), records each interactive
/// login in the kernel's audit log (Debian's sshd ends a session whose record it
/// cannot write), and binds a port below 1024 only when the spec asks for one.
fn extra_caps(port: u16) -> Vec<String> {
    let mut caps = vec!["SYS_CHROOT".to_string(), "AUDIT_WRITE".to_string()];
    if port < 1024 {
        caps.push("NET_BIND_SERVICE".into());
    }
    caps
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    let keys = host_keys_volume(layout);
    plan.volumes.push(VolumePlan { host: layout.login.host, name: keys.clone(), labels: layout.labels(&[]) });
    let mut files = if layout.on_host_network { config.slurm_files() } else { vec![] };
    files.push(PlannedFile {
        path: contract::SSHD_CONF.into(),
        mode: 0o644,
        contents: config.sshd.to_string(),
    });
    let mut login = layout.node_container(
        config,
        NodeContainer {
            placed: &layout.login,
            role: Role::Login,
            mounts: vec![
                munge::mount(layout, true),
                home::mount(layout),
                MountPlan {
                    source: MountSource::Volume(keys),
                    target: contract::SSH_HOST_KEYS.into(),
                    read_only: false,
                    propagation: None,
                },
            ],
            env: vec![],
            files,
        },
    );
    let port = config.sshd.port;
    login.cap_add.extend(extra_caps(port));
    login.labels.insert(LABEL_SSH_PORT.into(), port.to_string());
    // On the cluster's own bridge network the port is published on the host; on a
    // host's network sshd listens there itself, and in macvlan mode the login node has
    // its own LAN address.
    if !layout.on_host_network && layout.macvlan.is_none() {
        let host_ip = layout.spec.login.ssh_address.map_or("0.0.0.0".to_string(), |a| a.to_string());
        login.ports.push(PortPlan { host_ip, host_port: port, container_port: port });
    }
    plan.containers.push(login);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_takes_keys_only() {
        let conf = SshdConf { port: 2222, listen: None, authorized_keys_command: None }.to_string();
        for line in [
            "Port 2222\n",
            "PermitRootLogin no\n",
            "PasswordAuthentication no\n",
            "KbdInteractiveAuthentication no\n",
            "AuthenticationMethods publickey\n",
            "X11Forwarding no\n",
            "AllowAgentForwarding no\n",
            "HostKey /var/lib/slurmbox/ssh/ssh_host_ed25519_key\n",
            "AuthorizedKeysFile /var/lib/extrausers/ssh/%u .ssh/authorized_keys\n",
        ] {
            assert!(conf.contains(line), "{line:?} missing from\n{conf}");
        }
        assert!(!conf.contains("ListenAddress"));
        assert!(!conf.contains("3des") && !conf.contains("hmac-sha1") && !conf.contains("group1-sha1"));
        assert_eq!(extra_caps(22), ["SYS_CHROOT", "AUDIT_WRITE", "NET_BIND_SERVICE"]);
    }

    #[test]
    fn clusters_side_by_side_get_their_own_ports_and_keep_them() {
        let none = BTreeSet::new();
        let ports = |own: Option<u16>, taken: &[u16]| PublishedPorts {
            own,
            taken: taken.iter().map(|p| (*p, "other".to_string())).collect(),
        };
        assert_eq!(choose_ssh_port(None, &ports(None, &[]), &none), 2222);
        assert_eq!(choose_ssh_port(None, &ports(None, &[2222, 2223]), &none), 2224);
        assert_eq!(choose_ssh_port(None, &ports(Some(2230), &[2222]), &none), 2230, "kept");
        assert_eq!(choose_ssh_port(None, &ports(None, &[]), &BTreeSet::from([2222])), 2223);
        assert_eq!(choose_ssh_port(Some(22), &ports(None, &[22]), &none), 22, "the spec's, taken or not");
    }
}
