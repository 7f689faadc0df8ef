//! `slurmbox verify`: checks a cluster the way a user would, as the default user
//! on the login node: `sinfo`, `scontrol show node`, `srun -N<all> hostname`, and an
//! MPI computation of pi submitted with `sbatch` and run with `mpiexec` across every
//! compute node. Prints a table on stdout; exits non-zero if any check fails. Slurm's
//! answers are read through [`crate::slurm`].

use std::process::ExitCode;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::{Context, default_user, running_node};
use crate::cli::VerifyArgs;
use crate::engine::{Engine, ExecOutput, ExecSpec};
use crate::plan::{LABEL_NODE, LABEL_ROLE, LOGIN_HOST, Role};
use crate::slurm::{SinfoNode, Slurm, SlurmError};

const PI_PROGRAM: &str = include_str!("../../assets/verify/pi.py");
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
    let engine = handle.engine(login_container);
    let login = login_container.name.clone();
    let user = default_user(&containers);
    let mut nodes: Vec<String> = containers
        .iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str()))
        .filter_map(|c| c.labels.get(LABEL_NODE).cloned())
        .collect();
    nodes.sort();
    let run = |script: String| {
        let login = &login;
        let user = &user;
        async move { engine.exec(login, &ExecSpec::shell(&script).as_user(user)).await }
    };
    let p = &ctx.progress;
    let mut checks = Vec::new();

    let slurm = Slurm::new(engine, &login).as_user(&user);

    let step = p.step("sinfo");
    let t = Instant::now();
    let listed = query(slurm.sinfo().await)?;
    // Every node must answer and take jobs; one still finishing an earlier job
    // ("completing") or running one counts.
    let ready = |listed: &[SinfoNode]| {
        nodes.iter().filter(|n| listed.iter().any(|m| &m.name == *n && m.state.is_ready())).count()
    };
    checks.push(finish(
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
    ));

    let step = p.step("scontrol show node");
    let t = Instant::now();
    let known = query(slurm.nodes().await)?;
    let cpus_per_node: Vec<u32> = known.iter().flatten().map(|n| n.cpus).collect();
    let bad: Vec<String> = known
        .iter()
        .flatten()
        .filter(|n| n.state.is_unavailable())
        .map(|n| format!("{} {} ({})", n.name, n.state, n.reason.as_deref().unwrap_or("no reason")))
        .collect();
    checks.push(finish(
        &step,
        Check {
            name: "scontrol show node".into(),
            ok: known.is_ok() && bad.is_empty() && cpus_per_node.len() == nodes.len(),
            detail: match &known {
                Err(e) => e.clone(),
                Ok(_) if bad.is_empty() => format!("{} nodes, CPUs {:?}", cpus_per_node.len(), cpus_per_node),
                Ok(_) => bad.join("; "),
            },
            seconds: t.elapsed().as_secs_f64(),
        },
    ));

    let n = nodes.len();
    let step = p.step(format!("srun -N{n} hostname"));
    let t = Instant::now();
    let out = run(format!("srun -N{n} hostname")).await?;
    let seconds = t.elapsed().as_secs_f64();
    let mut answered: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).collect();
    answered.sort();
    checks.push(finish(
        &step,
        Check {
            name: format!("srun -N{n} hostname"),
            ok: out.ok() && answered == nodes,
            detail: if out.ok() { format!("answered: {}", answered.join(" ")) } else { failure(&out) },
            seconds,
        },
    ));

    let per_node = cpus_per_node.iter().copied().min().unwrap_or(1).clamp(1, 4);
    let tasks = per_node as usize * n;
    let step = p.step(format!("MPI pi: sbatch -N{n} --ntasks={tasks}, mpiexec"));
    let t = Instant::now();
    let out = run(pi_job_script(n, tasks)).await?;
    let seconds = t.elapsed().as_secs_f64();
    let value = |key: &str| out.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_string);
    let pi = value("pi=").and_then(|v| v.parse::<f64>().ok());
    let hosts = value("hosts=").unwrap_or_default();
    let ranks = value("ranks=").unwrap_or_default();
    let error = pi.map(|v| (v - std::f64::consts::PI).abs());
    let all_hosts = hosts.split(',').map(str::to_string).collect::<Vec<_>>() == nodes;
    checks.push(finish(
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
    ));

    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(["CHECK", "RESULT", "DETAIL", "TIME"]);
    for c in &checks {
        table.add_row([
            c.name.clone(),
            if c.ok { "ok".into() } else { "FAILED".into() },
            c.detail.clone(),
            format!("{:.2}s", c.seconds),
        ]);
    }
    println!("{table}");
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        p.say(format!("{failed} check(s) failed; `slurmbox logs --name {cluster}` has the daemons' side."));
        return Ok(ExitCode::FAILURE);
    }
    p.say(format!("Cluster {cluster:?} passed all {} checks.", checks.len()));
    Ok(ExitCode::SUCCESS)
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
