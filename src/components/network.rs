//! The network the nodes share: a private bridge network on one engine; on several
//! hosts their hosts' own networks (like bare metal), or in macvlan mode a macvlan
//! network on every host with each container at a fixed LAN address (the article's
//! set-up). Also which subnet MPI keeps to on the hosts' networks.

use super::{Config, Layout};
use crate::plan::{HOST_NETWORK, NetworkDriver, NetworkPlan, Plan};
use crate::spec::NetworkSpec;

/// The network node containers join.
pub fn node_network(cluster: &str, multi_host: bool, macvlan: bool) -> String {
    match (macvlan, multi_host) {
        (true, _) => format!("{cluster}-lan"),
        (false, true) => HOST_NETWORK.to_string(),
        (false, false) => format!("{cluster}-net"),
    }
}

/// MPI ranks on the hosts' network talk over the hosts' subnet (the spec's
/// network.subnet, else the controller address's /24), never over a bridge every host
/// has (docker0). Jobs inherit it from the login node's environment.
pub fn configure(layout: &Layout, config: &mut Config) {
    let hosts_subnet = match &layout.spec.network {
        NetworkSpec::Default { subnet: Some(subnet) } => Some(subnet.to_string()),
        _ => layout.controller_addr(layout.controller()).as_deref().and_then(subnet_24),
    };
    if let Some(subnet) = hosts_subnet.filter(|_| layout.on_host_network) {
        config.node_env.push(format!("OMPI_MCA_btl_tcp_if_include={subnet}"));
    }
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    match layout.macvlan {
        Some(m) => plan.networks.extend((0..layout.hosts.len()).map(|host| NetworkPlan {
            host,
            name: layout.network.clone(),
            driver: NetworkDriver::Macvlan {
                parent: m.parent.clone(),
                subnet: m.subnet.to_string(),
                gateway: m.gateway.map(|g| g.to_string()),
                ip_range: m.ip_range.to_string(),
            },
            labels: layout.labels(&[]),
        })),
        None if layout.multi_host => {}
        None => plan.networks.push(NetworkPlan {
            host: 0,
            name: layout.network.clone(),
            driver: NetworkDriver::Bridge,
            labels: layout.labels(&[]),
        }),
    }
}

/// `a.b.c.0/24` for an IPv4 address `a.b.c.d`.
fn subnet_24(addr: &str) -> Option<String> {
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    let [a, b, c, _] = ip.octets();
    Some(format!("{a}.{b}.{c}.0/24"))
}
