//! Command-line types (clap). No logic lives here: `main` resolves these into
//! the commands' `Context` once and hands each command its own arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slurmbox",
    version,
    about = "A real Slurm cluster out of Docker containers, in one command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print no progress, only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Which cluster, and where it lives.
#[derive(Debug, Args, Clone)]
pub struct ClusterName {
    /// Which cluster (default: the spec's name, else "slurmbox").
    #[arg(long, short = 'n', env = "SLURMBOX_CLUSTER")]
    pub name: Option<String>,
    /// Cluster spec (TOML): its name, and the host whose engine runs it. Without it, the
    /// default cluster on the local engine.
    #[arg(short = 'f', long = "file", env = "SLURMBOX_FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update a cluster and wait until every compute node is idle.
    Up(UpArgs),
    /// Stop and remove a cluster's containers (--purge: also its volumes, network and key).
    Down(DownArgs),
    /// Run a command in the cluster (default: login node, default user, in their home).
    Exec(ExecArgs),
    /// Open an interactive login shell in the cluster.
    Shell(ShellArgs),
    /// Show nodes with their Slurm and container state.
    Status(StatusArgs),
    /// Say per compute node which limits hold (memory, cores, processes), and where one
    /// does not, why and what would change it.
    Doctor(DoctorArgs),
    /// Print the daemons' logs of one node or all.
    Logs(LogsArgs),
    /// Check that the cluster works for users: every node idle in sinfo and scontrol, srun
    /// on every node, and an MPI job (sbatch + mpiexec) that computes pi across all of them.
    Verify(VerifyArgs),
    /// The clusters this machine brought up (found with --name from any folder).
    List(ListArgs),
    /// Write the controller's state (queued jobs, job IDs) and the accounting database
    /// of a running cluster to one file.
    Backup(BackupArgs),
    /// Put a backup's controller state and accounting database into a running cluster of
    /// the same name (what it had is backed up first).
    Restore(RestoreArgs),
    /// Grow or shrink a cluster over several hosts (edits its spec file).
    #[command(subcommand)]
    Host(HostCommand),
    /// The cluster's users: add, remove (login off), list (edits its spec file).
    #[command(subcommand)]
    User(UserCommand),
    /// Print a JWT token for USER of the cluster's REST API (`SLURM_JWT=...`), signed by
    /// the controller as `scontrol token` signs them.
    Token(TokenArgs),
    /// Print a link that logs USER into the cluster's dashboard (a token for them, 8
    /// hours by default, after the link's `#`); on the login node researchers run
    /// `web-login` for their own.
    WebLogin(WebLoginArgs),
    /// Print the ~/.ssh/config block a user logs in to the login node with
    /// (--known-hosts: the line that makes ssh trust its host key).
    SshConfig(SshConfigArgs),
    /// Node images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Generated configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Debian mirror to build images from.
    #[arg(long, env = "SLURMBOX_MIRROR", default_value = crate::image::DEFAULT_MIRROR)]
    pub mirror: String,
    /// A registry to pull the images from before building them (`registry.example.org/slurmbox`;
    /// `slurmbox image push` fills it); the spec's `registry` is used when this is not given.
    #[arg(long, env = "SLURMBOX_REGISTRY")]
    pub registry: Option<String>,
    /// Where the engine pulls Debian's base images from when it builds (where mmdebstrap
    /// is not installed): Docker Hub's `debian`, or a copy (`registry.example.org/debian`).
    #[arg(long, env = "SLURMBOX_BASE_IMAGE", default_value = crate::image::DEFAULT_BASE)]
    pub base_image: String,
}

impl BuildArgs {
    /// Where images come from; `registry` from the spec unless given here.
    pub fn sources(&self, registry: Option<&str>) -> crate::image::Sources {
        crate::image::Sources {
            mirror: self.mirror.clone(),
            registry: self.registry.clone().or(registry.map(String::from)),
            base: self.base_image.clone(),
        }
    }
}

impl Default for BuildArgs {
    fn default() -> BuildArgs {
        BuildArgs {
            mirror: crate::image::DEFAULT_MIRROR.into(),
            registry: None,
            base_image: crate::image::DEFAULT_BASE.into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub spec: ClusterName,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Seconds to wait for the compute nodes to become idle.
    #[arg(long, default_value_t = 180)]
    pub wait: u64,
    /// Go on without hosts whose engine does not answer (not the controller's): their
    /// nodes are left as they are.
    #[arg(long)]
    pub skip_unreachable: bool,
    /// How long to wait for the jobs on compute nodes whose containers must be made
    /// again (90s, 10m, 2h). Nodes still busy then are left draining, and the next `up`
    /// finishes them (default: wait as long as the jobs run).
    #[arg(long, value_name = "D", value_parser = parse_duration, conflicts_with = "now")]
    pub drain_timeout: Option<std::time::Duration>,
    /// Requeue the batch jobs on those nodes instead of waiting for them to end (they
    /// start again from the beginning on other nodes).
    #[arg(long, conflicts_with = "now")]
    pub requeue: bool,
    /// Make those containers again at once, ending the jobs that run in them.
    #[arg(long)]
    pub now: bool,
}

impl UpArgs {
    /// `up` of `spec` with every other flag at its default: how a command that edits the
    /// spec (`user add`) or the cluster's state (`restore`) converges it afterwards.
    pub fn defaults(spec: ClusterName) -> UpArgs {
        UpArgs {
            spec,
            build: BuildArgs::default(),
            wait: 180,
            skip_unreachable: false,
            drain_timeout: None,
            requeue: false,
            now: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// The file to write (a tar, readable by you alone; an existing one is replaced).
    #[arg(value_name = "FILE")]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// A file `slurmbox backup` wrote.
    #[arg(value_name = "FILE")]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// Also remove the cluster's volumes (home, Slurm state, munge key) and network.
    #[arg(long)]
    pub purge: bool,
    /// Answer yes to any confirmation (for scripts); accepted whether or not one is asked.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    #[command(flatten)]
    pub target: Target,
    /// Give the command a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    #[command(flatten)]
    pub target: Target,
}

/// Where and as whom `exec` and `shell` run.
#[derive(Debug, Args)]
pub struct Target {
    /// Node to run on: login (default), controller, node1, ...
    #[arg(long)]
    pub node: Option<String>,
    /// Account to run as (default: the cluster's default user; "root" for root).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// Print JSON on stdout instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// One node (controller, login, node1, ...); all nodes when left out.
    pub node: Option<String>,
    /// Lines from the end of each log ("all" for everything).
    #[arg(long, default_value = "all")]
    pub tail: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Add a host to the spec (-f) and bring its compute node up; the controller and
    /// running jobs are left alone.
    Add(HostAddArgs),
    /// Drain a host's nodes, wait for their jobs, remove its containers and take it
    /// out of the spec (-f).
    Remove(HostRemoveArgs),
}

#[derive(Debug, Args)]
pub struct HostAddArgs {
    /// The new host's name (its compute node is named after it).
    pub host: String,
    /// How to reach its Docker engine: ssh://user@addr, tcp://addr:port or unix:///path.
    #[arg(long)]
    pub engine: String,
    /// How the other hosts reach it (default: the address in --engine).
    #[arg(long)]
    pub address: Option<String>,
    /// The spec to add it to (-f), and what `up` then takes.
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Debug, Args)]
pub struct HostRemoveArgs {
    /// The host to take out of the cluster.
    pub host: String,
    #[command(flatten)]
    pub spec: ClusterName,
    /// Seconds to wait for jobs on its nodes to finish.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// Do not wait for jobs (they are killed), and remove a host that cannot be reached
    /// from the spec (its containers then stay on it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to the spec (-f) and to every node, with a home on the shared /home
    /// and the ssh keys they log in with; running nodes and jobs are left alone. For a
    /// known user: give their login back and add keys.
    Add(UserAddArgs),
    /// Take a user's login away (account locked, keys removed; their files and jobs stay,
    /// and jobs still queued or running are listed); --purge-home deletes the account and
    /// its home once it has no jobs.
    Remove(UserRemoveArgs),
    /// The spec's users, their IDs and whether they may log in.
    List(UserListArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// Account name (lowercase letters, digits, '-').
    #[arg(value_name = "NAME")]
    pub user: String,
    /// Its UID (default: the next free one from 1001); the same on every node.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Its primary group's GID (default: the UID, a group of its own).
    #[arg(long)]
    pub gid: Option<u32>,
    /// A public key file (e.g. alice.pub) whose keys may log in; repeat for more.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Args)]
pub struct UserRemoveArgs {
    #[arg(value_name = "NAME")]
    pub user: String,
    /// Also delete the account and its home (refused while it has jobs).
    #[arg(long)]
    pub purge_home: bool,
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    #[command(flatten)]
    pub cluster: ClusterName,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// The user who logs in.
    pub user: String,
    /// The name to give the login node in ~/.ssh/config (default: the cluster's).
    #[arg(long = "host")]
    pub host: Option<String>,
    /// Print the known_hosts line(s) for the login node's host keys instead.
    #[arg(long)]
    pub known_hosts: bool,
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the node image for a Slurm release, or the storage image (kept and reused
    /// once built).
    Build(ImageBuildArgs),
    /// Put an image this engine has (as `image build` names it) into a site's registry,
    /// for other machines to pull instead of building (`registry` in their spec).
    Push(ImagePushArgs),
}

#[derive(Debug, Args)]
pub struct ImagePushArgs {
    #[command(flatten)]
    pub image: ImageChoice,
    /// The registry (`registry.example.org:5000/slurmbox`); default: the spec's `registry`.
    #[arg(long, env = "SLURMBOX_REGISTRY")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterName,
}

/// Which image `image build` and `image push` act on.
#[derive(Debug, Args)]
pub struct ImageChoice {
    /// Slurm release: 24.11 (Debian trixie) or 26.05 (Debian forky); default: the
    /// spec's (-f), else 24.11.
    #[arg(long, value_parser = parse_slurm)]
    pub slurm: Option<crate::spec::SlurmVersion>,
    /// CPU architecture: amd64 or arm64 (default: this machine's). Another one than
    /// this machine's is built under qemu-user emulation.
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<crate::spec::Arch>,
    /// The storage image (GlusterFS, for `[home] shared = "glusterfs"`) instead of a
    /// node image.
    #[arg(long, conflicts_with = "slurm")]
    pub storage: bool,
    /// The accounting image (MariaDB and slurmdbd of --slurm's release) instead of a
    /// node image.
    #[arg(long, conflicts_with = "storage")]
    pub accounting: bool,
    /// The controller's image (the node image with slurmrestd and the JWT plugin) of
    /// --slurm's release instead of a node image.
    #[arg(long, conflicts_with_all = ["storage", "accounting"])]
    pub controller: bool,
    /// The metrics image (Prometheus, the same for every Slurm release) instead of a
    /// node image.
    #[arg(long, conflicts_with_all = ["slurm", "storage", "accounting", "controller"])]
    pub metrics: bool,
    /// The dashboard's image (nginx and the pages' libraries, the same for every Slurm
    /// release) instead of a node image.
    #[arg(long, conflicts_with_all = ["slurm", "storage", "accounting", "controller", "metrics"])]
    pub web: bool,
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    #[command(flatten)]
    pub image: ImageChoice,
    /// Build again even if the image exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub build: BuildArgs,
    /// The spec (-f) whose node image it is: its Slurm release and `[software]`.
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The Slurm user the token is for (sent as X-SLURM-USER-NAME with it).
    pub user: String,
    /// How long it is valid: 90s, 30m, 1h, 2d (default: Slurm's, 30 minutes).
    #[arg(long, value_parser = crate::components::rest::parse_lifespan)]
    pub lifespan: Option<u64>,
    #[command(flatten)]
    pub cluster: ClusterName,
}

#[derive(Debug, Args)]
pub struct WebLoginArgs {
    /// The Slurm user the link logs in.
    pub user: String,
    /// How long the login lasts: 90s, 30m, 1h, 2d.
    #[arg(long, default_value = "8h", value_parser = crate::components::rest::parse_lifespan)]
    pub lifespan: u64,
    #[command(flatten)]
    pub cluster: ClusterName,
}

/// A duration as people write it ("90s", "10m", "2h"; a bare number is seconds).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::components::rest::parse_lifespan(s)
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a duration: write a positive number with s, m, h or d (\"10m\")"))
}

fn parse_arch(s: &str) -> Result<crate::spec::Arch, String> {
    crate::spec::Arch::parse(s).ok_or_else(|| format!("unsupported architecture {s:?}; use amd64 or arm64"))
}

fn parse_slurm(s: &str) -> Result<crate::spec::SlurmVersion, String> {
    crate::spec::SlurmVersion::parse(s)
        .ok_or_else(|| format!("unsupported Slurm version {s:?}; use 24.11 or 26.05"))
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the generated slurm.conf and cgroup.conf without starting anything.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: ClusterName,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
