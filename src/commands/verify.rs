//! `slurmbox verify`: checks a cluster the way a user would, as the default user
//! on the login node: `sinfo`, `scontrol show node`, `srun -N<all> hostname`, an
//! MPI computation of pi submitted with `sbatch` and run with `mpiexec` across every
//! compute node, and, where the cluster has them, its REST API with a token from
//! `scontrol token`, Prometheus scraping every target, and the dashboard with the
//! token of the link `web-login` prints. Prints a table on stdout;
//! exits non-zero if any check fails. Slurm's answers are read through [`crate::slurm`].

use std::process::ExitCode;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::{Context, default_user, running_node};
use crate::cli::VerifyArgs;
use crate::components::{metrics, rest, web};
use crate::engine::{ContainerInfo, Engine, EngineError, ExecOutput, ExecSpec};
use crate::plan::{LABEL_REST_URL, LOGIN_HOST, Role};
use crate::progress::Progress;
use crate::slurm::{SinfoNode, Slurm, SlurmError};

const PI_PROGRAM: &str = include_str!("../../assets/verify/pi.py");
const SERVICES_PROGRAM: &str = include_str!("../../assets/verify/services.py");
const WORKDIR: &str = ".slurmbox-verify";

struct Check {
    name: String,
    ok: bool,
    detail: String,
    seconds: f64,
}

pub async fn run(ctx: &Context, args: VerifyArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = handle.name.clone();
    let containers = handle.containers().await?;
    let login_container = running_node(&cluster, &containers, LOGIN_HOST)?;
    let login = Login {
        engine: handle.engine(login_container),
        container: login_container.name.clone(),
        user: default_user(&containers),
        nodes: compute_nodes(&containers),
    };
    let p = &ctx.progress;
    let mut checks = vec![sinfo(&login, p).await?];
    let (nodes, cpus_per_node) = scontrol_show_node(&login, p).await?;
    checks.push(nodes);
    checks.push(srun_hostname(&login, p).await?);
    checks.push(mpi_pi(&login, &cpus_per_node, p).await?);
    if let Some(rest) = containers.iter().find(|c| c.is(Role::Rest)) {
        let mut urls = vec![format!("http://{}:{}", rest::REST_HOST, rest::REST_CONTAINER_PORT)];
        urls.extend(rest.labels.get(LABEL_REST_URL).cloned());
        checks.push(service(&login, "REST API (slurmrestd)", "rest", &urls, p).await?);
    }
    if let Some(prometheus) = containers.iter().find(|c| c.is(Role::Metrics)) {
        let port = prometheus
            .labels
            .get(metrics::LABEL_PORT)
            .map_or(metrics::PROMETHEUS_PORT.to_string(), String::clone);
        let urls = [
            format!("http://{}:{}", metrics::METRICS_HOST, metrics::PROMETHEUS_PORT),
            format!("http://127.0.0.1:{port}"),
        ];
        checks.push(service(&login, "metrics (Prometheus)", "metrics", &urls, p).await?);
    }
    if let Some(dashboard) = containers.iter().find(|c| c.is(Role::Web)) {
        let published = dashboard.labels.get(web::LABEL_WEB_URL).cloned().unwrap_or_default();
        let scheme = if published.starts_with("https") { "https" } else { "http" };
        let urls = [format!("{scheme}://{}:{}", web::WEB_HOST, web::WEB_CONTAINER_PORT), published];
        checks.push(service(&login, "dashboard (nginx)", "web", &urls, p).await?);
    }
    print_table(&checks);
    Ok(verdict(&cluster, &checks, p))
}

/// Where the checks run: the login node (its engine and container), as the user,
/// and the compute nodes they expect to answer, by name.
struct Login<'a, E> {
    engine: &'a E,
    container: String,
    user: String,
    nodes: Vec<String>,
}

impl<E: Engine> Login<'_, E> {
    fn slurm(&self) -> Slurm<'_, E> {
        Slurm::new(self.engine, &self.container).as_user(&self.user)
    }

    /// Runs a shell script as the user, in their home.
    async fn run(&self, script: String) -> Result<ExecOutput, EngineError> {
        self.engine.exec(&self.container, &ExecSpec::shell(&script).as_user(&self.user)).await
    }
}

/// The compute nodes' names, sorted.
fn compute_nodes(containers: &[ContainerInfo]) -> Vec<String> {
    let mut nodes: Vec<String> = containers
        .iter()
        .filter(|c| c.is(Role::Compute))
        .filter_map(|c| c.node().map(String::from))
        .collect();
    nodes.sort();
    nodes
}

/// `sinfo`: every node answers and takes jobs.
async fn sinfo<E: Engine>(login: &Login<'_, E>, p: &Progress) -> miette::Result<Check> {
    let step = p.step("sinfo");
    let t = Instant::now();
    let listed = query(login.slurm().sinfo().await)?;
    // Every node must answer and take jobs; one still finishing an earlier job
    // ("completing") or running one counts.
    let nodes = &login.nodes;
    let ready = |listed: &[SinfoNode]| {
        nodes.iter().filter(|n| listed.iter().any(|m| &m.name == *n && m.state.is_ready())).count()
    };
    Ok(finish(
        &step,
        Check {
            name: "sinfo".into(),
            ok: listed.as_ref().is_ok_and(|l| ready(l) == nodes.len()),
            detail: match &listed {
                Ok(l) => l.iter().map(|n| format!("{} {}", n.name, n.state)).collect::<Vec<_>>().join(", "),
                Err(e) => e.clone(),
            },
            seconds: t.elapsed().as_secs_f64(),
        },
    ))
}

/// `scontrol show node`: no node is down or drained, each has its CPUs. The check,
/// and each node's CPUs (for the MPI job's size).
async fn scontrol_show_node<E: Engine>(
    login: &Login<'_, E>,
    p: &Progress,
) -> miette::Result<(Check, Vec<u32>)> {
    let step = p.step("scontrol show node");
    let t = Instant::now();
    let known = query(login.slurm().nodes().await)?;
    let cpus_per_node: Vec<u32> = known.iter().flatten().map(|n| n.cpus).collect();
    let bad: Vec<String> = known
        .iter()
        .flatten()
        .filter(|n| n.state.is_unavailable())
        .map(|n| format!("{} {} ({})", n.name, n.state, n.reason.as_deref().unwrap_or("no reason")))
        .collect();
    let check = Check {
        name: "scontrol show node".into(),
        ok: known.is_ok() && bad.is_empty() && cpus_per_node.len() == login.nodes.len(),
        detail: match &known {
            Err(e) => e.clone(),
            Ok(_) if bad.is_empty() => format!("{} nodes, CPUs {:?}", cpus_per_node.len(), cpus_per_node),
            Ok(_) => bad.join("; "),
        },
        seconds: t.elapsed().as_secs_f64(),
    };
    Ok((finish(&step, check), cpus_per_node))
}

/// `srun -N<all> hostname`: a step on every node, each answering with its name.
async fn srun_hostname<E: Engine>(login: &Login<'_, E>, p: &Progress) -> miette::Result<Check> {
    let n = login.nodes.len();
    let step = p.step(format!("srun -N{n} hostname"));
    let t = Instant::now();
    let out = login.run(format!("srun -N{n} hostname")).await?;
    let seconds = t.elapsed().as_secs_f64();
    let mut answered: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).collect();
    answered.sort();
    Ok(finish(
        &step,
        Check {
            name: format!("srun -N{n} hostname"),
            ok: out.ok() && answered == login.nodes,
            detail: if out.ok() { format!("answered: {}", answered.join(" ")) } else { failure(&out) },
            seconds,
        },
    ))
}

/// An MPI computation of pi, submitted with `sbatch` and run with `mpiexec` across
/// every compute node (up to 4 ranks per node): right to 5e-11, every rank and host.
async fn mpi_pi<E: Engine>(
    login: &Login<'_, E>,
    cpus_per_node: &[u32],
    p: &Progress,
) -> miette::Result<Check> {
    let n = login.nodes.len();
    let per_node = cpus_per_node.iter().copied().min().unwrap_or(1).clamp(1, 4);
    let tasks = per_node as usize * n;
    let step = p.step(format!("MPI pi: sbatch -N{n} --ntasks={tasks}, mpiexec"));
    let t = Instant::now();
    let out = login.run(pi_job_script(n, tasks)).await?;
    let seconds = t.elapsed().as_secs_f64();
    let value = |key: &str| out.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_string);
    let pi = value("pi=").and_then(|v| v.parse::<f64>().ok());
    let hosts = value("hosts=").unwrap_or_default();
    let ranks = value("ranks=").unwrap_or_default();
    let error = pi.map(|v| (v - std::f64::consts::PI).abs());
    let all_hosts = hosts.split(',').map(str::to_string).collect::<Vec<_>>() == login.nodes;
    Ok(finish(
        &step,
        Check {
            name: "MPI pi (sbatch + mpiexec)".into(),
            ok: out.ok() && error.is_some_and(|e| e < 5e-11) && all_hosts && ranks == tasks.to_string(),
            detail: match (pi, error) {
                (Some(v), Some(e)) => format!("pi={v:.12} error={e:.1e}, {ranks} ranks on {hosts}"),
                _ => failure(&out),
            },
            seconds,
        },
    ))
}

/// A service the cluster offers, asked from the login node as the user by
/// assets/verify/services.py (`mode`: what it checks), at the first of `urls` that
/// answers.
async fn service<E: Engine>(
    login: &Login<'_, E>,
    name: &str,
    mode: &str,
    urls: &[String],
    p: &Progress,
) -> miette::Result<Check> {
    use base64::Engine as _;
    let step = p.step(name.to_string());
    let t = Instant::now();
    let program = base64::engine::general_purpose::STANDARD.encode(SERVICES_PROGRAM);
    let script = format!(
        "set -e; mkdir -p ~/{WORKDIR}; cd ~/{WORKDIR}; echo {program} | base64 -d > services.py; \
         python3 services.py {mode} {}",
        urls.join(" ")
    );
    let out = login.run(script).await?;
    Ok(finish(
        &step,
        Check {
            name: name.into(),
            ok: out.ok(),
            detail: if out.ok() { out.stdout.trim().to_string() } else { failure(&out) },
            seconds: t.elapsed().as_secs_f64(),
        },
    ))
}

/// The checks as a table, on stdout.
fn print_table(checks: &[Check]) {
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(["CHECK", "RESULT", "DETAIL", "TIME"]);
    for c in checks {
        table.add_row([
            c.name.clone(),
            if c.ok { "ok".into() } else { "FAILED".into() },
            c.detail.clone(),
            format!("{:.2}s", c.seconds),
        ]);
    }
    println!("{table}");
}

/// One line saying how it went, and the exit code: failure if any check failed.
fn verdict(cluster: &str, checks: &[Check], p: &Progress) -> ExitCode {
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        p.say(format!("{failed} check(s) failed; `slurmbox logs --name {cluster}` has the daemons' side."));
        return ExitCode::FAILURE;
    }
    p.say(format!("Cluster {cluster:?} passed all {} checks.", checks.len()));
    ExitCode::SUCCESS
}

fn finish(step: &crate::progress::Step, check: Check) -> Check {
    if check.ok {
        step.done()
    } else {
        step.fail("failed")
    }
    check
}

fn failure(out: &ExecOutput) -> String {
    tail(out.code, if out.stderr.trim().is_empty() { &out.stdout } else { &out.stderr })
}

/// A command's exit code and the last lines it printed, for a check's detail.
fn tail(code: i64, text: &str) -> String {
    let last: Vec<&str> = text.trim().lines().rev().take(3).collect();
    format!("exit {code}: {}", last.into_iter().rev().collect::<Vec<_>>().join(" / "))
}

/// A Slurm query's answer for a check: what it found, or what to show for its
/// failure. An engine that does not answer ends the command.
fn query<T>(answer: Result<T, SlurmError>) -> miette::Result<Result<T, String>> {
    match answer {
        Ok(found) => Ok(Ok(found)),
        Err(SlurmError::Engine(e)) => Err(e.into()),
        Err(SlurmError::Failed { code, stderr, .. }) => Ok(Err(tail(code, &stderr))),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Writes the pi program and its batch script into the user's home, submits it with
/// `sbatch --wait`, and prints its output.
fn pi_job_script(nodes: usize, tasks: usize) -> String {
    use base64::Engine as _;
    let program = base64::engine::general_purpose::STANDARD.encode(PI_PROGRAM);
    let job = format!(
        "#!/bin/bash\n#SBATCH --job-name=slurmbox-verify\n#SBATCH --nodes={nodes}\n#SBATCH --ntasks={tasks}\n\
         #SBATCH --time=3\n#SBATCH --output=pi.out\ncd \"$SLURM_SUBMIT_DIR\"\nmpiexec -n {tasks} python3 pi.py\n"
    );
    let job = base64::engine::general_purpose::STANDARD.encode(job);
    format!(
        "set -e; mkdir -p ~/{WORKDIR}; cd ~/{WORKDIR}; rm -f pi.out; \
         echo {program} | base64 -d > pi.py; echo {job} | base64 -d > pi.sbatch; \
         timeout 240 sbatch --wait --quiet pi.sbatch || rc=$?; cat pi.out; exit ${{rc:-0}}"
    )
}
