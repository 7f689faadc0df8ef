//! `slurmbox ssh-config USER`: the block a researcher puts in `~/.ssh/config` to log
//! in to the login node, and (`--known-hosts`) the line that makes their ssh trust
//! its host key from the first connection on, with no "are you sure" to answer.

use std::process::ExitCode;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{Context, load_spec, running_node};
use crate::cli::SshConfigArgs;
use crate::engine::{Engine, ExecSpec};
use crate::plan::LOGIN_HOST;
use crate::spec::{ClusterSpec, NetworkSpec};

/// Where users reach the login node's sshd: the address the spec names, else the login
/// node's own LAN address (macvlan), else the controller's host.
fn address(spec: &ClusterSpec) -> String {
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
        // The local engine: this machine, as the others on its network know it.
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into()),
    }
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
    println!("    HostName {}", address(&spec));
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
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn the_address_users_reach() {
        let spec = |text: &str| ClusterSpec::parse("c.toml", text).unwrap();
        assert_eq!(address(&spec("[login]\nssh_address = \"10.1.2.3\"\n")), "10.1.2.3");
        let two = "[[host]]\nname = \"a\"\nengine = \"ssh://u@192.168.0.10\"\n[[host]]\nname = \"b\"\nengine = \"ssh://u@192.168.0.11\"\n[home]\nhost_path = \"/srv/home\"\n";
        assert_eq!(address(&spec(two)), "192.168.0.10");
        let ip: IpAddr = address(&spec("")).parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(ip.is_unspecified(), "the local engine: a host name");
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // ssh-keygen -lf of this key prints SHA256:... below.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert_eq!(fingerprint(key).unwrap(), "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU");
    }
}
