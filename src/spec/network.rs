//! `[network]`: how the cluster's containers reach each other, the default network
//! or a macvlan network giving every container an address on the hosts' LAN.

use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::{MacvlanSpec, NetworkSpec, SpecError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) mode: Option<Spanned<String>>,
    parent: Option<Spanned<String>>,
    subnet: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    ip_range: Option<Spanned<String>>,
}

/// Checks `[network]`; `nodes` is how many compute nodes the spec asks for, on
/// `hosts` listed hosts.
pub(super) fn check_network(
    raw: &RawNetwork,
    nodes: usize,
    hosts: usize,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<NetworkSpec, SpecError> {
    let macvlan = match &raw.mode {
        Some(mode) if mode.get_ref() == "macvlan" => true,
        Some(mode) if mode.get_ref() == "default" => false,
        Some(mode) => {
            return Err(err(
                mode.span(),
                format!("unknown network mode {:?}", mode.get_ref()),
                "use \"macvlan\" (a LAN address for every container), or leave mode out for the default"
                    .into(),
            ));
        }
        None => false,
    };
    let net = |value: &Spanned<String>, key: &str| -> Result<Ipv4Net, SpecError> {
        value.get_ref().parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| {
            err(
                value.span(),
                format!("{key} must be an IPv4 block such as \"192.168.0.0/24\", got {:?}", value.get_ref()),
                "write the address, a slash and the prefix length".into(),
            )
        })
    };
    if !macvlan {
        if let Some(key) = [&raw.parent, &raw.gateway, &raw.ip_range].into_iter().flatten().next() {
            return Err(err(
                key.span(),
                "parent, gateway and ip_range are macvlan settings".into(),
                "add mode = \"macvlan\" to [network], or leave them out".into(),
            ));
        }
        let subnet = match &raw.subnet {
            Some(subnet) if hosts < 2 => {
                return Err(err(
                    subnet.span(),
                    "network.subnet names the hosts' network of a cluster over several hosts".into(),
                    "on one engine the cluster has a network of its own: leave subnet out".into(),
                ));
            }
            Some(subnet) => Some(net(subnet, "subnet")?),
            None => None,
        };
        return Ok(NetworkSpec::Default { subnet });
    }
    let missing = |key: &str, example: &str| {
        let span = raw.mode.as_ref().map_or(0..0, |m| m.span());
        err(
            span,
            format!("network mode \"macvlan\" needs {key}"),
            format!("add {key} = {example} to [network]"),
        )
    };
    let parent =
        raw.parent.as_ref().ok_or_else(|| missing("parent", "\"eth0\" (the hosts' LAN interface)"))?;
    if !(1..=15).contains(&parent.get_ref().len())
        || !parent.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(err(
            parent.span(),
            format!("invalid interface name {:?}", parent.get_ref()),
            "name the hosts' network interface on the LAN, as `ip link` shows it (e.g. eth0)".into(),
        ));
    }
    let subnet = net(raw.subnet.as_ref().ok_or_else(|| missing("subnet", "\"192.168.0.0/24\""))?, "subnet")?;
    let range_value = raw.ip_range.as_ref().ok_or_else(|| missing("ip_range", "\"192.168.0.192/27\""))?;
    let ip_range = net(range_value, "ip_range")?;
    if !subnet.contains(&ip_range) {
        return Err(err(
            range_value.span(),
            format!("ip_range {ip_range} is not inside subnet {subnet}"),
            "pick a block of the LAN's subnet that no other machine uses".into(),
        ));
    }
    let gateway = match &raw.gateway {
        Some(g) => {
            let addr: Ipv4Addr = g.get_ref().parse().map_err(|_| {
                err(
                    g.span(),
                    format!("invalid gateway address {:?}", g.get_ref()),
                    "write an IPv4 address".into(),
                )
            })?;
            if !subnet.contains(&addr) {
                return Err(err(
                    g.span(),
                    format!("gateway {addr} is not inside subnet {subnet}"),
                    "use the LAN router's address".into(),
                ));
            }
            Some(addr)
        }
        None => None,
    };
    let spec = MacvlanSpec { parent: parent.get_ref().clone(), subnet, gateway, ip_range };
    // Controller and login node, then every compute node.
    if spec.addresses(nodes + 2).is_none() {
        return Err(err(
            range_value.span(),
            format!("ip_range {ip_range} has too few addresses for {} containers", nodes + 2),
            "the controller, the login node and every compute node each take one: widen the range".into(),
        ));
    }
    Ok(NetworkSpec::Macvlan(spec))
}
