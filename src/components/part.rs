//! The `Part` hooks: each part's whole life, asked through one enum so that the deploy
//! module, the views and the backup know no part by name. Every hook dispatches to a
//! function in the part's own file; a part without work at a moment has none.

use super::*;
use crate::apply::Apply;
use crate::cluster::report::{ClusterStatus, DoctorReport};
use crate::cluster::{Cluster, Model};
use crate::engine::Engine;
use crate::image::Recipe;
use crate::spec::{Arch, ClusterSpec, HomeSpec};

/// Every part of a cluster, in the order the plan is folded (and its containers listed).
pub const PARTS: [Part; 16] = [
    Part::Network,
    Part::Munge,
    Part::Controller,
    Part::Home,
    Part::Login,
    Part::Compute,
    Part::Gpus,
    Part::Limits,
    // After the compute and controller parts: it adds to their containers.
    Part::Containers,
    Part::GlusterFs,
    Part::Ldap,
    // After every Slurm node's part (it mounts its volume on each) and the GlusterFS
    // /home (it makes homes there); before accounting, whose associations slurmctld
    // ties to the users' UIDs as it learns of them.
    Part::Users,
    Part::Accounting,
    // After the controller's and accounting's parts: both give their containers what
    // they need (the JWT key; the exporter beside slurmctld).
    Part::Rest,
    Part::Metrics,
    // After the login node's part (it gives the login node `web-login`) and the REST
    // API's and metrics' (it proxies to them).
    Part::Web,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Network,
    Munge,
    Controller,
    Home,
    Login,
    Compute,
    Users,
    Gpus,
    Limits,
    Containers,
    GlusterFs,
    Ldap,
    Accounting,
    Rest,
    Metrics,
    Web,
}

impl Part {
    /// What this part sets that other parts' containers carry.
    pub fn configure(self, layout: &Layout, config: &mut Config) {
        match self {
            Part::Network => network::configure(layout, config),
            Part::Home => home::configure(layout, config),
            Part::Limits => limits::configure(layout, config),
            Part::Gpus => gpus::configure(layout, config),
            Part::Ldap => ldap::configure(layout, config),
            Part::Accounting => accounting::configure(layout, config),
            Part::Rest => rest::configure(layout, config),
            Part::Metrics => metrics::configure(layout, config),
            Part::Munge
            | Part::Controller
            | Part::Login
            | Part::Compute
            | Part::Users
            | Part::GlusterFs
            | Part::Containers
            | Part::Web => {}
        }
    }

    /// The networks, volumes and containers this part adds to the plan.
    pub fn add(self, layout: &Layout, config: &Config, plan: &mut Plan) {
        match self {
            Part::Network => network::add(layout, plan),
            Part::Munge => munge::add(layout, plan),
            Part::Controller => controller::add(layout, config, plan),
            Part::Home => home::add(layout, plan),
            Part::Login => login::add(layout, config, plan),
            Part::Compute => compute::add(layout, config, plan),
            Part::Users => users::add(layout, plan),
            Part::Ldap => ldap::add(layout, plan),
            Part::Accounting => accounting::add(layout, config, plan),
            Part::Rest => rest::add(layout, config, plan),
            Part::Metrics => metrics::add(layout, plan),
            Part::Web => web::add(layout, plan),
            Part::Limits => limits::add(layout, config, plan),
            Part::Containers => containers::add(layout, plan),
            // Compute nodes carry their GPUs ([`gpus::of_node`]); gres.conf is the controller's.
            Part::Gpus => {}
            Part::GlusterFs => glusterfs::add(layout, plan),
        }
    }

    /// Checks against what already runs on the hosts, before anything changes.
    pub async fn check<E: Engine>(self, engines: &[E], plan: &Plan) -> Result<(), PartError> {
        match self {
            Part::GlusterFs => glusterfs::check(engines, plan).await,
            Part::Rest => rest::check(engines, plan).await,
            Part::Web => web::check(engines, plan).await,
            _ => Ok(()),
        }
    }

    /// Work right after the containers are created, before any part prepares its own:
    /// what can start ahead of the rest.
    pub async fn on_created<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::GlusterFs => glusterfs::on_created(apply).await,
            Part::Ldap => ldap::on_created(apply).await,
            Part::Accounting => accounting::on_created(apply).await,
            _ => Ok(()),
        }
    }

    /// Work between creating the containers and starting them all (the controller may
    /// be started first). Returns what it did, for the progress line.
    pub async fn before_start<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::Munge => munge::before_start(apply).await,
            Part::Compute => compute::before_start(apply).await,
            Part::Rest => rest::before_start(apply).await,
            Part::Web => web::before_start(apply).await,
            _ => Ok(()),
        }
    }

    /// Work once every container runs. Returns a line for the progress output when the
    /// part had something to do.
    pub async fn after_start<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::after_start(apply).await,
            Part::GlusterFs => glusterfs::after_start(apply).await,
            Part::Users => users::after_start(apply).await,
            Part::Accounting => accounting::after_start(apply).await,
            Part::Web => web::after_start(apply).await,
            _ => Ok(()),
        }
    }
}

/// Which hosts run a part's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageHosts {
    /// Every host (of the image's architecture).
    Every,
    /// The controller's host alone.
    Controller,
    /// The controllers' hosts: the primary's, and a backup's on another host.
    Controllers,
    /// The hosts of the controllers' state volume: the controllers' hosts and one more
    /// ([`glusterfs::state_hosts`]).
    StateBricks,
}

impl Part {
    /// The image this part's containers run on hosts of `arch`, and which hosts those
    /// are; `None` where it runs no container of its own image.
    pub fn image(self, spec: &ClusterSpec, arch: Arch) -> Option<(Recipe, ImageHosts)> {
        match self {
            // The node image: login and compute nodes (and the controller where its
            // host has no controller image), with the site's packages.
            Part::Compute => Some((
                Recipe::new(spec.slurm, arch).with_software(&spec.software.image_packages()),
                ImageHosts::Every,
            )),
            // The node image with slurmrestd and the JWT plugin: slurmctld, slurmrestd.
            Part::Controller => Some((Recipe::controller(spec.slurm, arch), ImageHosts::Controllers)),
            Part::Metrics => {
                spec.metrics.enabled.then(|| (metrics::image_recipe(arch), ImageHosts::Controller))
            }
            Part::Web => spec.web.enabled.then(|| (web::image_recipe(arch), ImageHosts::Controller)),
            Part::GlusterFs => match (spec.home == HomeSpec::GlusterFs, spec.controller.state_on_glusterfs())
            {
                (true, _) => Some((glusterfs::image_recipe(arch), ImageHosts::Every)),
                (false, true) => Some((glusterfs::image_recipe(arch), ImageHosts::StateBricks)),
                (false, false) => None,
            },
            Part::Accounting => {
                spec.accounting.then(|| (accounting::image_recipe(spec.slurm, arch), ImageHosts::Controller))
            }
            _ => None,
        }
    }

    /// What this part adds to `status`, asked of what runs.
    pub async fn status(self, cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
        match self {
            Part::Controller => controller::status(cluster, model, status).await,
            Part::GlusterFs => glusterfs::status(cluster, model, status).await,
            Part::Rest => rest::status(cluster, model, status).await,
            Part::Metrics => metrics::status(cluster, model, status),
            Part::Web => web::status(model, status),
            _ => {}
        }
    }

    /// What this part adds to `doctor`: what the hosts offer it and what it holds.
    pub async fn doctor(
        self,
        cluster: &Cluster,
        model: &Model,
        spec: &ClusterSpec,
        report: &mut DoctorReport,
    ) {
        match self {
            Part::Controller => controller::doctor(cluster, model, report).await,
            Part::Gpus => gpus::doctor(model, spec, report),
            Part::Limits => limits::doctor(cluster, model, spec, report).await,
            _ => {}
        }
    }
    /// The file this part keeps in a backup and what it holds ("controller state");
    /// `None` for a part with nothing to back up.
    pub fn backup_file(self) -> Option<(&'static str, &'static str)> {
        match self {
            Part::Controller => Some((controller::BACKUP_FILE, "controller state")),
            Part::Accounting => Some((accounting::BACKUP_FILE, "accounting database")),
            _ => None,
        }
    }

    /// This part's share of `slurmbox backup`, read from what runs; `None` where it has
    /// none in this cluster. A backup takes the shares in the reverse of [`PARTS`]'
    /// order: the accounting database before the controller's state, so that a job the
    /// database has is in the state too.
    pub async fn backup(self, cluster: &Cluster, model: &Model) -> Result<Option<Vec<u8>>, PartError> {
        match self {
            Part::Controller => controller::backup(cluster, model).await.map(Some),
            Part::Accounting => accounting::backup(cluster, model).await,
            _ => Ok(None),
        }
    }

    /// Whether this cluster can take this part's share of a backup back (`share`:
    /// what the backup holds for it), asked before anything changes.
    pub fn restorable(self, cluster: &Cluster, model: &Model, share: Option<&[u8]>) -> Result<(), PartError> {
        match self {
            Part::Accounting => accounting::restorable(cluster, model, share),
            _ => Ok(()),
        }
    }

    /// Before any part's share is put back: stop what would write meanwhile.
    pub async fn before_restore(
        self,
        cluster: &Cluster,
        model: &Model,
        share: Option<&[u8]>,
    ) -> Result<(), PartError> {
        match self {
            Part::Accounting => accounting::before_restore(cluster, model, share).await,
            _ => Ok(()),
        }
    }

    /// Once every part's share is back: what makes the cluster whole again.
    pub async fn after_restore(self, cluster: &Cluster, model: &Model) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::after_restore(cluster, model).await,
            _ => Ok(()),
        }
    }

    /// Puts this part's share of a backup back, in [`PARTS`]' order.
    pub async fn restore(self, cluster: &Cluster, model: &Model, share: &[u8]) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::restore(cluster, model, share).await,
            Part::Accounting => accounting::restore(cluster, model, share).await,
            _ => Ok(()),
        }
    }
}
