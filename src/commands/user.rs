//! `slurmbox user add`, `user remove` and `user list`: the cluster's researchers.
//!
//! The spec file stays the one record of the cluster (-f, else the one `up` was given
//! for --name: see [`crate::registry::Registry::spec_file`]): `add` and `remove` edit
//! its `[[user]]` tables (keeping comments and layout), check the result like any spec,
//! write it whole ([`spec::SpecFile`]), then converge like `up`. Accounts are not part
//! of any container (see [`crate::components::users`]), so that writes the accounts on
//! every host and makes the new home: no node restarts, running jobs go on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::Diagnostic;

use super::{Context, converge};
use crate::cli::{ClusterName, UpArgs, UserAddArgs, UserCommand, UserListArgs, UserRemoveArgs};
use crate::engine::{Engine, ExecSpec};
use crate::plan::{CONTROLLER_HOST, LOGIN_HOST};
use crate::registry::Registry;
use crate::slurm::Slurm;
use crate::spec::{self, ClusterSpec, ID_RANGE, SpecFile, UserSpec};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum UserError {
    #[error("`slurmbox user {0}` needs the cluster's spec file")]
    #[diagnostic(help(
        "pass it with -f cluster.toml (or SLURMBOX_FILE): users are kept there. A cluster brought up without \
         one: write its spec to a file (`name = \"...\"` is enough) and bring it up with `slurmbox up -f FILE`"
    ))]
    NoSpecFile(&'static str),
    #[error("cannot read the ssh key {}: {source}", path.display())]
    #[diagnostic(help("pass the public key file, e.g. --ssh-key ~/.ssh/id_ed25519.pub"))]
    KeyRead { path: PathBuf, source: std::io::Error },
    #[error("{} is not a public ssh key file", path.display())]
    #[diagnostic(help("{hint}"))]
    NotAPublicKey { path: PathBuf, hint: String },
    #[error("user {name:?} already has uid {uid}, not {asked}")]
    #[diagnostic(help("leave --uid/--gid out to keep the account's IDs (files on /home belong to them)"))]
    OtherIds { name: String, uid: u32, asked: u32 },
    #[error("uid {0} is taken by user {1:?}")]
    #[diagnostic(help("leave --uid out and slurmbox picks the next free one"))]
    UidTaken(u32, String),
    #[error("{file} has no user {name:?} (it has: {known})")]
    #[diagnostic(help("`slurmbox user list` shows the cluster's users"))]
    Unknown { file: String, name: String, known: String },
    #[error("{0:?} is the cluster's default user (exec, shell and verify run as it)")]
    #[diagnostic(help("make another [[user]] the first in the spec file, then remove this one"))]
    Default(String),
    #[error("user {name:?} still has jobs: {jobs}")]
    #[diagnostic(help(
        "their home stays while jobs may write to it: wait for them, or cancel them with \
         `slurmbox exec --user root -- scancel -u {name}`, then run this again"
    ))]
    HasJobs { name: String, jobs: String },
}

impl UserError {
    /// Whether it is a mistake in what was asked, which the binary turns into exit code 2.
    pub fn is_usage(&self) -> bool {
        !matches!(self, UserError::HasJobs { .. })
    }
}

pub async fn run(ctx: &Context, cmd: UserCommand) -> miette::Result<ExitCode> {
    match cmd {
        UserCommand::Add(args) => add(ctx, args).await,
        UserCommand::Remove(args) => remove(ctx, args).await,
        UserCommand::List(args) => list(ctx, args),
    }
}

/// The cluster's spec file (-f, else the one `up` remembered for --name), read.
fn spec_file(ctx: &Context, args: &ClusterName, command: &'static str) -> miette::Result<SpecFile> {
    let path = Registry::new(&ctx.settings)
        .spec_file(args.file.as_deref(), args.name.as_deref())
        .ok_or(UserError::NoSpecFile(command))?;
    Ok(SpecFile::read(path)?)
}

/// The public keys in a file: every line that is not empty or a comment.
fn read_keys(path: &Path) -> Result<Vec<String>, UserError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| UserError::KeyRead { path: path.into(), source })?;
    if text.contains("PRIVATE KEY") {
        return Err(UserError::NotAPublicKey {
            path: path.into(),
            hint: format!(
                "this is a private key, which must never leave its owner: pass {}.pub",
                path.display()
            ),
        });
    }
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() || keys.iter().any(|k| !spec::is_public_key(k)) {
        return Err(UserError::NotAPublicKey {
            path: path.into(),
            hint: "each line must be one public key, as in ~/.ssh/id_ed25519.pub (\"ssh-ed25519 AAAA... you@laptop\")"
                .into(),
        });
    }
    Ok(keys)
}

/// The lowest UID from `ID_RANGE` above every spec user's.
fn next_uid(users: &[UserSpec]) -> u32 {
    users.iter().map(|u| u.uid + 1).max().unwrap_or(ID_RANGE.0).max(ID_RANGE.0 + 1)
}

/// The spec's file as `up` takes it, for converging after an edit.
fn up_args(path: &Path, cluster: &ClusterName) -> UpArgs {
    UpArgs::defaults(ClusterName { name: cluster.name.clone(), file: Some(path.to_path_buf()) })
}

async fn add(ctx: &Context, args: UserAddArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let file = spec_file(ctx, &args.cluster, "add")?;
    let (path, origin) = (&file.path, file.origin());
    let before = file.spec()?;
    let mut keys = Vec::new();
    for file in &args.ssh_key {
        keys.extend(read_keys(file)?);
    }
    let user = match before.users.iter().find(|u| u.name == args.user) {
        // Known already: given its login back, with any new keys.
        Some(known) => {
            for (asked, has) in [(args.uid, known.uid), (args.gid, known.gid)] {
                if let Some(asked) = asked.filter(|a| *a != has) {
                    return Err(UserError::OtherIds { name: known.name.clone(), uid: has, asked }.into());
                }
            }
            let mut user = UserSpec { login: true, ..known.clone() };
            if !known.login {
                user.ssh_keys.clear();
            }
            for key in keys {
                if !user.ssh_keys.contains(&key) {
                    user.ssh_keys.push(key);
                }
            }
            user
        }
        None => {
            let uid = args.uid.unwrap_or_else(|| next_uid(&before.users));
            if let Some(other) = before.users.iter().find(|u| u.uid == uid) {
                return Err(UserError::UidTaken(uid, other.name.clone()).into());
            }
            UserSpec { gid: args.gid.unwrap_or(uid), ssh_keys: keys, ..UserSpec::new(&args.user, uid) }
        }
    };
    let implicit = ClusterSpec::default_cluster().users;
    let edited = spec::with_user(&file.text, &user, &implicit)?;
    // Checked like any spec: a bad name or an ID out of range is refused here.
    file.check(&edited)?;
    file.write(&edited)?;
    p.say(format!(
        "User {:?} (uid {}, gid {}, {} ssh key{}) is in {origin}.",
        user.name,
        user.uid,
        user.gid,
        user.ssh_keys.len(),
        if user.ssh_keys.len() == 1 { "" } else { "s" }
    ));
    let code = converge(ctx, &up_args(path, &args.cluster)).await.map(|_| ExitCode::SUCCESS)?;
    p.say(format!(
        "{} can log in: `slurmbox ssh-config {}{}` prints the block for their ~/.ssh/config.",
        user.name,
        user.name,
        file_flag(path)
    ));
    Ok(code)
}

fn file_flag(path: &Path) -> String {
    format!(" -f {}", path.display())
}

async fn remove(ctx: &Context, args: UserRemoveArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let file = spec_file(ctx, &args.cluster, "remove")?;
    let (path, origin) = (&file.path, file.origin());
    let spec = file.spec()?;
    let Some(user) = spec.users.iter().find(|u| u.name == args.user) else {
        let known = spec.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(UserError::Unknown { file: origin, name: args.user, known }.into());
    };
    if spec.default_user() == user.name {
        return Err(UserError::Default(user.name.clone()).into());
    }

    let named = ClusterName { name: args.cluster.name.clone(), file: Some(path.clone()) };
    let cluster = ctx.cluster_controller(&named).await?;
    let containers = cluster.containers().await?;
    let controller = super::running_node(&cluster.name, &containers, CONTROLLER_HOST)?;
    let jobs: Vec<String> = Slurm::new(cluster.engine(controller), &controller.name)
        .jobs()
        .await?
        .into_iter()
        .filter(|j| j.user == user.name)
        .map(|j| format!("{} ({})", j.id, j.state))
        .collect();
    if args.purge_home && !jobs.is_empty() {
        return Err(UserError::HasJobs { name: user.name.clone(), jobs: jobs.join(", ") }.into());
    }

    let edited = if args.purge_home {
        spec::without_user(&file.text, &user.name)?.expect("the user is in the spec")
    } else {
        // The account stays, locked: it still owns its files and its jobs run on.
        let locked = UserSpec { login: false, ssh_keys: vec![], ..user.clone() };
        spec::with_user(&file.text, &locked, &[])?
    };
    file.check(&edited)?;
    file.write(&edited)?;
    let code = converge(ctx, &up_args(path, &args.cluster)).await.map(|_| ExitCode::SUCCESS)?;

    // Sessions on the login node end with the login (jobs run elsewhere, and go on).
    let login = super::running_node(&cluster.name, &containers, LOGIN_HOST)?;
    let engine = cluster.engine(login);
    engine.exec(&login.name, &ExecSpec::new(["pkill", "-KILL", "-u", &user.uid.to_string()])).await?;
    if args.purge_home {
        let home = format!("{}/{}", crate::contract::HOME, user.name);
        let keys = format!("{}/ssh/{}", crate::contract::ACCOUNTS_DIR, user.name);
        let out = engine.exec(&login.name, &ExecSpec::new(["rm", "-rf", "--", &home, &keys])).await?;
        if !out.ok() {
            p.say(format!("Could not remove {home}: {}", out.stderr.trim()));
        }
        p.say(format!("User {:?} is gone: the account, its keys and {home}.", user.name));
    } else {
        p.say(format!(
            "User {:?} can no longer log in (account locked, keys removed); their home and files stay. \
             `slurmbox user remove {} --purge-home` deletes them.",
            user.name, user.name
        ));
    }
    if !jobs.is_empty() {
        p.say(format!(
            "Their jobs are left as they are: {}. `slurmbox exec --user root -- scancel -u {}` cancels them.",
            jobs.join(", "),
            user.name
        ));
    }
    Ok(code)
}

fn list(ctx: &Context, args: UserListArgs) -> miette::Result<ExitCode> {
    let spec = spec_file(ctx, &args.cluster, "list")?.spec()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&spec.users).expect("users serialize"));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:>6} {:>6} {:<6} {:>4}  HOME", "USER", "UID", "GID", "LOGIN", "KEYS");
    for u in &spec.users {
        let login = if u.login { "yes" } else { "no" };
        println!(
            "{:<20} {:>6} {:>6} {:<6} {:>4}  {}/{}",
            u.name,
            u.uid,
            u.gid,
            login,
            u.ssh_keys.len(),
            crate::contract::HOME,
            u.name
        );
    }
    if let Some(ldap) = &spec.ldap {
        println!("(and the users of {} under {})", ldap.uri, ldap.base_dn);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_public_key_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("id.pub");
        std::fs::write(
            &public,
            "# laptop\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8ZkZ6l0kq alice@laptop\n\n",
        )
        .unwrap();
        assert_eq!(
            read_keys(&public).unwrap(),
            ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8ZkZ6l0kq alice@laptop"]
        );
        let private = dir.path().join("id");
        std::fs::write(
            &private,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = read_keys(&private).unwrap_err();
        assert!(
            matches!(e, UserError::NotAPublicKey { ref hint, .. } if hint.contains("private key")),
            "{e}"
        );
        assert!(e.is_usage());
    }

    #[test]
    fn new_users_get_the_next_free_uid() {
        assert_eq!(next_uid(&[UserSpec::new("researcher", 1000)]), 1001);
        assert_eq!(next_uid(&[UserSpec::new("a", 1000), UserSpec::new("b", 1500)]), 1501);
        assert_eq!(next_uid(&[]), 1001);
    }
}
