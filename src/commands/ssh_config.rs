//! `slurmbox ssh-config USER`: the block a researcher puts in `~/.ssh/config` to log
//! in to the login node, and (`--known-hosts`) the line that makes their ssh trust
//! its host key from the first connection on, with no "are you sure" to answer.

use std::net::{IpAddr, Ipv4Addr, TcpListener, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{Context, load_spec, running_node};
use crate::cli::SshConfigArgs;
use crate::engine::{Engine, ExecSpec};
use crate::plan::LOGIN_HOST;
use crate::spec::{ClusterSpec, NetworkSpec};

/// Where users reach the login node's sshd: the address the spec names, else the login
/// node's own LAN address (macvlan), else the host of the engine it runs on: the spec's
/// first host, the one DOCKER_HOST names, or this machine.
fn address(spec: &ClusterSpec, docker_host: Option<&str>) -> String {
    if let Some(address) = spec.login.ssh_address.filter(|a| !a.is_unspecified()) {
        return address.to_string();
    }
    if let NetworkSpec::Macvlan(m) = &spec.network {
        let nodes = spec.hosts.len().max(1) * spec.compute.count as usize;
        if let Some(login) = m.addresses(nodes + 2).and_then(|a| a.get(1).copied()) {
            return login.to_string();
        }
    }
    match spec.hosts.first().map(|h| h.address.as_str()) {
        Some(address) if !address.is_empty() => address.to_string(),
        _ => match docker_host.and_then(engine_host) {
            Some(host) => host,
            None => this_machine(std::fs::read_to_string("/proc/sys/kernel/hostname").ok().as_deref()),
        },
    }
}

/// The host of a remote engine's address (`ssh://user@host:22/socket`,
/// `tcp://host:2375`); `None` for a socket on this machine.
fn engine_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("tcp://"))?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        // A bare IPv6 address has more than one colon, and no port.
        None if host_port.matches(':').count() > 1 => host_port,
        None => host_port.split(':').next()?,
    };
    Some(host.to_string()).filter(|h| !h.is_empty())
}

/// This machine as users reach it: its name (`hostname`) where that resolves to
/// addresses of its own, else the address it reaches its network from, else loopback
/// (users on this machine only). A name that resolves nowhere, or to another machine,
/// would leave ssh unable to connect.
fn this_machine(hostname: Option<&str>) -> String {
    if let Some(name) = hostname.map(str::trim).filter(|n| !n.is_empty() && resolves_here(n)) {
        return name.to_string();
    }
    outgoing_address().unwrap_or(IpAddr::from(Ipv4Addr::LOCALHOST)).to_string()
}

/// Whether `name` (a host name or an address) resolves, and only to this machine.
fn resolves_here(name: &str) -> bool {
    let Ok(found) = (name, 22).to_socket_addrs() else {
        return false;
    };
    let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    !ips.is_empty() && ips.into_iter().all(is_own)
}

/// Whether `ip` is one of this machine's addresses: loopback, or one it can listen on.
fn is_own(ip: IpAddr) -> bool {
    !ip.is_unspecified() && (ip.is_loopback() || TcpListener::bind((ip, 0)).is_ok())
}

/// The address this machine reaches its network from: the source address of its
/// default route, which a UDP socket picks when it is given a destination (nothing is
/// sent). `None` on a machine with no route out.
fn outgoing_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // A documentation address (TEST-NET-3): routed like any other, never answered.
    socket.connect((Ipv4Addr::new(203, 0, 113, 1), 9)).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

/// The name ssh stores the login node's host key under, whatever address reaches it.
fn alias(cluster: &str) -> String {
    format!("slurmbox-{cluster}")
}

/// `SHA256:...`, as `ssh-keygen -l` prints a public key's fingerprint.
fn fingerprint(public_key: &str) -> Option<String> {
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(blob).ok()?;
    let digest = Sha256::digest(&bytes);
    Some(format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)))
}

pub async fn run(ctx: &Context, args: SshConfigArgs) -> miette::Result<ExitCode> {
    let spec = load_spec(ctx, &args.cluster)?;
    let cluster = ctx.cluster_controller(&args.cluster).await?;
    let containers = cluster.containers().await?;
    let login = running_node(&cluster.name, &containers, LOGIN_HOST)?;
    let dir = crate::contract::SSH_HOST_KEYS;
    let out = cluster
        .engine(login)
        .exec(
            &login.name,
            &ExecSpec::shell(&format!("cat {dir}/ssh_host_ed25519_key.pub {dir}/ssh_host_rsa_key.pub")),
        )
        .await?;
    // "type blob comment" lines, without the comment.
    let keys: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .collect();
    let alias = alias(&cluster.name);
    if args.known_hosts {
        for key in &keys {
            println!("{alias} {key}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !spec.users.iter().any(|u| u.name == args.user) && spec.ldap.is_none() {
        ctx.progress.say(format!(
            "Note: {:?} is not one of the spec's users; `slurmbox user add {}` makes the account.",
            args.user, args.user
        ));
    }
    let host = args.host.clone().unwrap_or_else(|| cluster.name.clone());
    println!("# Cluster {:?}: its login node. Add to ~/.ssh/config, then `ssh {host}`.", cluster.name);
    for key in &keys {
        if let Some(fp) = fingerprint(key) {
            println!("# host key {} {fp}", key.split_whitespace().next().unwrap_or(""));
        }
    }
    println!("Host {host}");
    println!("    HostName {}", address(&spec, ctx.settings.docker_host.as_deref()));
    let port = login
        .labels
        .get(crate::plan::LABEL_SSH_PORT)
        .cloned()
        .unwrap_or_else(|| spec.login.ssh_port.unwrap_or(crate::spec::DEFAULT_SSH_PORT).to_string());
    println!("    Port {port}");
    println!("    User {}", args.user);
    println!("    HostKeyAlias {alias}");
    println!("    IdentitiesOnly yes");
    println!("    ForwardAgent no");
    println!("    ForwardX11 no");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every address `name` resolves to is this machine's (asked of the
    /// system's resolver and sockets, not of the functions under test).
    fn reaches_this_machine(name: &str) -> bool {
        let ips: Vec<IpAddr> =
            (name, 22).to_socket_addrs().map(|a| a.map(|a| a.ip()).collect()).unwrap_or_default();
        !ips.is_empty()
            && ips.iter().all(|ip| {
                !ip.is_unspecified() && (ip.is_loopback() || std::net::TcpListener::bind((*ip, 0)).is_ok())
            })
    }

    #[test]
    fn the_address_users_reach() {
        let spec = |text: &str| ClusterSpec::parse("c.toml", text).unwrap();
        assert_eq!(address(&spec("[login]\nssh_address = \"10.1.2.3\"\n"), None), "10.1.2.3");
        let two = "[[host]]\nname = \"a\"\nengine = \"ssh://u@192.168.0.10\"\n[[host]]\nname = \"b\"\nengine = \"ssh://u@192.168.0.11\"\n[home]\nhost_path = \"/srv/home\"\n";
        assert_eq!(address(&spec(two), None), "192.168.0.10");
        // The spec's hosts come before DOCKER_HOST, which is only the local engine's.
        assert_eq!(address(&spec(two), Some("ssh://pi@10.0.0.9")), "192.168.0.10");
        // The local engine on another machine: that machine.
        assert_eq!(address(&spec(""), Some("ssh://pi@10.0.0.9")), "10.0.0.9");
        assert_eq!(address(&spec(""), Some("tcp://docker.lab:2375")), "docker.lab");
        // The local engine here: a name or an address that leads to this machine.
        let here = address(&spec(""), None);
        assert!(reaches_this_machine(&here), "{here:?} does not lead to this machine");
        assert_eq!(address(&spec(""), Some("unix:///run/user/1000/docker.sock")), here);
    }

    #[test]
    fn this_machine_is_named_only_where_the_name_leads_here() {
        assert_eq!(this_machine(Some("localhost\n")), "localhost");
        // A name no resolver knows (.invalid never resolves), or none: an address of
        // this machine instead, never the name.
        for name in [Some("no-such-host.invalid"), Some(""), None] {
            let got = this_machine(name);
            let ip: IpAddr = got.parse().unwrap_or_else(|_| panic!("{name:?} gave {got:?}, not an address"));
            assert!(reaches_this_machine(&got), "{name:?} gave {ip}, not this machine's");
        }
        // Another machine's address (a documentation one), or every address, is not
        // this machine.
        assert!(!resolves_here("203.0.113.77"));
        assert!(!resolves_here("0.0.0.0"));
        assert!(resolves_here("127.0.0.1"));
    }

    #[test]
    fn a_remote_engine_s_host() {
        assert_eq!(engine_host("ssh://pi@10.0.0.2").as_deref(), Some("10.0.0.2"));
        assert_eq!(
            engine_host("ssh://pi@node7.lab:2222/run/user/1000/docker.sock").as_deref(),
            Some("node7.lab")
        );
        assert_eq!(engine_host("ssh://node7").as_deref(), Some("node7"));
        assert_eq!(engine_host("tcp://10.0.0.3:2375").as_deref(), Some("10.0.0.3"));
        assert_eq!(engine_host("tcp://[fd00::3]:2375").as_deref(), Some("fd00::3"));
        assert_eq!(engine_host("unix:///var/run/docker.sock"), None);
        assert_eq!(engine_host("ssh://"), None);
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // ssh-keygen -lf of this key prints SHA256:... below.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert_eq!(fingerprint(key).unwrap(), "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU");
    }
}
