//! slurmbox: a real Slurm cluster out of Docker containers.
//!
//! The flow of `slurmbox up`, module by module:
//! [`spec`] (cluster.toml, checked at the edge) → [`plan`] (plain data: containers,
//! volumes, rendered files; no I/O) → [`engine`] (the one interface to Docker) →
//! [`components`] (the parts of a cluster, each waiting for and shaping its own daemons,
//! with [`wait`] and [`engine::checked`]) → [`deploy`], with [`progress`] printing
//! one line per step. Every Slurm command goes through [`slurm`], every GlusterFS one
//! through [`gluster`]; what `status` shows is gathered in [`status`]. Slurm's files are built in [`render`]; the node image in [`image`];
//! what the scripts inside the containers expect of slurmbox is declared in [`contract`].

pub mod apply;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod components;
pub mod contract;
pub mod deploy;
pub mod engine;
pub mod exit;
pub mod gluster;
pub mod image;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod render;
pub mod settings;
pub mod slurm;
pub mod spec;
pub mod status;
pub mod wait;
