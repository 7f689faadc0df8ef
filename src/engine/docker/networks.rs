//! A cluster's networks and volumes on a Docker engine: made when missing (and
//! refused when one of the same name is not the cluster's), removed by its label.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListNetworksOptions, ListVolumesOptions, RemoveVolumeOptions};

use super::{api, hash_map, is_status};
use crate::engine::{EngineError, Result};
use crate::plan::{LABEL_CLUSTER, NetworkDriver, NetworkPlan, VolumePlan};

fn cluster_filter(cluster: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{LABEL_CLUSTER}={cluster}")])])
}

/// bollard's request for a new network.
fn network_request(net: &NetworkPlan) -> NetworkCreateRequest {
    match &net.driver {
        NetworkDriver::Bridge => NetworkCreateRequest {
            name: net.name.clone(),
            driver: Some("bridge".into()),
            labels: Some(hash_map(&net.labels)),
            ..Default::default()
        },
        NetworkDriver::Macvlan { parent, subnet, gateway, ip_range } => NetworkCreateRequest {
            name: net.name.clone(),
            driver: Some("macvlan".into()),
            options: Some(HashMap::from([("parent".to_string(), parent.clone())])),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.clone()),
                    gateway: gateway.clone(),
                    ip_range: Some(ip_range.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(hash_map(&net.labels)),
            ..Default::default()
        },
    }
}

pub(super) async fn ensure_network(docker: &Docker, net: &NetworkPlan) -> Result<()> {
    match docker.inspect_network(&net.name, None::<bollard::query_parameters::InspectNetworkOptions>).await {
        Ok(found) => {
            let ours = found.labels.unwrap_or_default().get(LABEL_CLUSTER) == net.labels.get(LABEL_CLUSTER);
            if ours { Ok(()) } else { Err(EngineError::Foreign { what: "network", name: net.name.clone() }) }
        }
        Err(e) if is_status(&e, 404) => match docker.create_network(network_request(net)).await {
            Ok(_) => Ok(()),
            // Another `up` of the same cluster made it a moment ago.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(api(format!("create network {}", net.name))(e)),
        },
        Err(e) => Err(api(format!("inspect network {}", net.name))(e)),
    }
}

pub(super) async fn ensure_volume(docker: &Docker, vol: &VolumePlan) -> Result<()> {
    match docker.inspect_volume(&vol.name).await {
        Ok(found) => {
            if found.labels.get(LABEL_CLUSTER) == vol.labels.get(LABEL_CLUSTER) {
                Ok(())
            } else {
                Err(EngineError::Foreign { what: "volume", name: vol.name.clone() })
            }
        }
        Err(e) if is_status(&e, 404) => {
            let request = VolumeCreateRequest {
                name: Some(vol.name.clone()),
                labels: Some(hash_map(&vol.labels)),
                ..Default::default()
            };
            docker
                .create_volume(request)
                .await
                .map(|_| ())
                .map_err(api(format!("create volume {}", vol.name)))
        }
        Err(e) => Err(api(format!("inspect volume {}", vol.name))(e)),
    }
}

pub(super) async fn remove_networks(docker: &Docker, cluster: &str) -> Result<Vec<String>> {
    let options = ListNetworksOptions { filters: Some(cluster_filter(cluster)) };
    let nets = docker.list_networks(Some(options)).await.map_err(api("list networks"))?;
    let mut removed = Vec::new();
    for name in nets.into_iter().filter_map(|n| n.name) {
        match docker.remove_network(&name).await {
            Ok(()) => removed.push(name),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api(format!("remove network {name}"))(e)),
        }
    }
    Ok(removed)
}

pub(super) async fn remove_volumes(docker: &Docker, cluster: &str) -> Result<Vec<String>> {
    let options = ListVolumesOptions { filters: Some(cluster_filter(cluster)) };
    let vols = docker.list_volumes(Some(options)).await.map_err(api("list volumes"))?;
    let mut removed = Vec::new();
    for v in vols.volumes.unwrap_or_default() {
        match docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: true })).await {
            Ok(()) => removed.push(v.name),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api(format!("remove volume {}", v.name))(e)),
        }
    }
    Ok(removed)
}
