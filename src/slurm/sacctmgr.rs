//! Slurm's accounting database as slurmbox writes and reads it: typed `sacctmgr`
//! changes ([`SacctmgrChange`], rendered to argument lists, their outcome a typed
//! [`Applied`]), the associations and users `sacctmgr show --json` lists
//! ([`Association`], [`SlurmUser`]), and the associations slurmctld has learnt from
//! slurmdbd (`scontrol show assoc_mgr`, [`ControllerAssoc`]).
//!
//! The changes go in one exec, each its own `sacctmgr -i` call ([`batch_script`]):
//! `sacctmgr` reading several commands from stdin exits 0 whatever each did, so the
//! outcomes could not be told apart; each call's exit status follows its output
//! ([`split_batch`]).

use serde::Deserialize;

/// One change to the accounting database, as `sacctmgr -i` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SacctmgrChange {
    /// The cluster, which every association names.
    AddCluster { name: String },
    /// An account under root, its description and organization its name.
    AddAccount { name: String, cluster: String },
    /// An account's fair-share weight and caps. `max_jobs: None` takes the cap away;
    /// `grp_tres: None` leaves a GrpTRES set earlier as it is.
    ModifyAccount {
        name: String,
        cluster: String,
        fairshare: u32,
        grp_tres: Option<String>,
        max_jobs: Option<u32>,
    },
    /// A user's association with an account; `default_account`: the user's default one.
    AddUser { name: String, account: String, cluster: String, default_account: bool },
}

impl SacctmgrChange {
    /// The words after `sacctmgr -i`.
    pub fn args(&self) -> Vec<String> {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        match self {
            SacctmgrChange::AddCluster { name } => words(&["add", "cluster", name]),
            SacctmgrChange::AddAccount { name, cluster } => {
                let mut args = words(&["add", "account", name]);
                args.extend([format!("cluster={cluster}"), format!("description={name}")]);
                args.push(format!("organization={name}"));
                args
            }
            SacctmgrChange::ModifyAccount { name, cluster, fairshare, grp_tres, max_jobs } => {
                let mut args = words(&["modify", "account", "where"]);
                args.extend([format!("name={name}"), format!("cluster={cluster}"), "set".into()]);
                args.push(format!("fairshare={fairshare}"));
                args.extend(grp_tres.as_ref().map(|t| format!("grptres={t}")));
                // -1 takes a limit away.
                args.push(format!("grpjobs={}", max_jobs.map_or(-1, i64::from)));
                args
            }
            SacctmgrChange::AddUser { name, account, cluster, default_account } => {
                let mut args = words(&["add", "user", name]);
                args.extend([format!("account={account}"), format!("cluster={cluster}")]);
                args.extend(default_account.then(|| format!("defaultaccount={account}")));
                args
            }
        }
    }
}

/// What a [`SacctmgrChange`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The database had it already (sacctmgr says so and exits 1).
    AlreadySo,
}

/// What `sacctmgr -i` prints, on stdout or stderr, when there was nothing to add or
/// change (24.11 and 26.05: "This cluster lab already exists.  Not adding.", "Already
/// existing account physics on cluster lab", "Request didn't affect anything / Nothing
/// added.", "Nothing modified").
const NOTHING_NEW: &[&str] = &[
    "Nothing new",
    "Nothing added",
    "already exists",
    "Already existing",
    "Nothing modified",
    "didn't affect",
];

/// The line that ends each change's output in a batch, with its exit status after it.
const BATCH_MARK: &str = "@@slurmbox-sacctmgr-status=";

/// A bash script running `sacctmgr -i` for each change in order, each one's output
/// (stdout and stderr together) followed by a line with its exit status. (Each runs
/// whatever the one before did: "already there" is an exit status of 1 too.)
pub fn batch_script(changes: &[SacctmgrChange]) -> String {
    let quote = |w: &str| format!("'{}'", w.replace('\'', r"'\''"));
    changes
        .iter()
        .map(|c| {
            let args: Vec<String> = c.args().iter().map(|w| quote(w)).collect();
            format!("sacctmgr -i {} 2>&1; echo; echo {BATCH_MARK}$?", args.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each change's (exit status, output) from what [`batch_script`] printed, in order; as
/// many as ended.
pub fn split_batch(stdout: &str) -> Vec<(i64, String)> {
    let mut done = Vec::new();
    let mut output = String::new();
    for line in stdout.lines() {
        match line.strip_prefix(BATCH_MARK) {
            Some(code) => {
                done.push((code.trim().parse().unwrap_or(-1), std::mem::take(&mut output).trim().to_string()))
            }
            None => {
                output.push_str(line);
                output.push('\n');
            }
        }
    }
    done
}

/// How a change ended: `None` for a failure.
pub fn outcome(code: i64, stdout: &str, stderr: &str) -> Option<Applied> {
    if code == 0 {
        return Some(Applied::Changed);
    }
    NOTHING_NEW.iter().any(|p| stdout.contains(p) || stderr.contains(p)).then_some(Applied::AlreadySo)
}

/// An association: an account on a cluster (`user: None`), or a user in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub cluster: String,
    pub account: String,
    pub user: Option<String>,
    /// The account above an account's association (`None` for root's and users').
    pub parent: Option<String>,
    /// Its fair-share weight (Fairshare, raw shares).
    pub fairshare: u32,
    /// GrpJobs: at most this many running jobs at once; `None`: no cap.
    pub max_jobs: Option<u32>,
    /// GrpTRES as sacctmgr takes it ("cpu=8,gres/gpu=2"); `None`: no cap.
    pub grp_tres: Option<String>,
}

#[derive(Deserialize)]
struct AssocDoc {
    associations: Vec<AssocJson>,
}

#[derive(Deserialize)]
struct AssocJson {
    account: String,
    cluster: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    parent_account: String,
    #[serde(default)]
    shares_raw: u32,
    #[serde(default)]
    max: AssocMax,
}

#[derive(Deserialize, Default)]
struct AssocMax {
    #[serde(default)]
    jobs: MaxJobs,
    #[serde(default)]
    tres: MaxTres,
}

#[derive(Deserialize, Default)]
struct MaxJobs {
    #[serde(default)]
    per: MaxJobsPer,
}

#[derive(Deserialize, Default)]
struct MaxJobsPer {
    /// GrpJobs (v0.0.42 names it `max.jobs.per.count`).
    count: Option<Number>,
}

#[derive(Deserialize, Default)]
struct MaxTres {
    /// GrpTRES.
    #[serde(default)]
    total: Vec<Tres>,
}

#[derive(Deserialize)]
struct Tres {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    count: i64,
}

/// v0.0.42's optional number.
#[derive(Deserialize)]
struct Number {
    set: bool,
    infinite: bool,
    number: u64,
}

impl Number {
    fn value(&self) -> Option<u64> {
        (self.set && !self.infinite).then_some(self.number)
    }
}

fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

/// Parses `sacctmgr show associations --json=v0.0.42`.
pub fn parse_associations(json: &str) -> Result<Vec<Association>, serde_json::Error> {
    let doc: AssocDoc = serde_json::from_str(json)?;
    Ok(doc
        .associations
        .into_iter()
        .map(|a| {
            let tres: Vec<String> = a
                .max
                .tres
                .total
                .iter()
                .map(|t| match t.name.as_str() {
                    "" => format!("{}={}", t.kind, t.count),
                    name => format!("{}/{name}={}", t.kind, t.count),
                })
                .collect();
            Association {
                cluster: a.cluster,
                account: a.account,
                user: non_empty(a.user),
                parent: non_empty(a.parent_account),
                fairshare: a.shares_raw,
                max_jobs: a.max.jobs.per.count.and_then(|n| n.value()).map(|n| n as u32),
                grp_tres: non_empty(tres.join(",")),
            }
        })
        .collect())
}

/// A user the accounting database knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmUser {
    pub name: String,
    pub default_account: Option<String>,
}

#[derive(Deserialize)]
struct UsersDoc {
    users: Vec<UserJson>,
}

#[derive(Deserialize)]
struct UserJson {
    name: String,
    #[serde(default)]
    default: UserDefault,
}

#[derive(Deserialize, Default)]
struct UserDefault {
    #[serde(default)]
    account: String,
}

/// Parses `sacctmgr show users --json=v0.0.42`.
pub fn parse_sacctmgr_users(json: &str) -> Result<Vec<SlurmUser>, serde_json::Error> {
    let doc: UsersDoc = serde_json::from_str(json)?;
    Ok(doc
        .users
        .into_iter()
        .map(|u| SlurmUser { name: u.name, default_account: non_empty(u.default.account) })
        .collect())
}

/// The UID slurmctld shows for a user it could not resolve (NO_VAL).
pub const UNRESOLVED_UID: u32 = 4_294_967_294;

/// An association as slurmctld holds it (what it checks jobs against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerAssoc {
    pub account: String,
    /// The user and their UID ([`UNRESOLVED_UID`] while slurmctld cannot resolve it).
    pub user: Option<(String, u32)>,
}

/// Parses `scontrol -o show assoc_mgr flags=assoc`: one `Key=value ...` line per
/// association (`Account=physics UserName=alice(1000) ...`); other lines are headings.
/// scontrol prints the association manager as text only: `--json` is ignored there
/// (Slurm 24.11 and 26.05).
pub fn parse_assoc_mgr(text: &str) -> Vec<ControllerAssoc> {
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split(' ').find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
            };
            let account = field("Account")?.to_string();
            let user = field("UserName").filter(|u| !u.is_empty()).and_then(|u| {
                let (name, uid) = u.strip_suffix(')')?.split_once('(')?;
                Some((name.to_string(), uid.parse().ok()?))
            });
            Some(ControllerAssoc { account, user })
        })
        .collect()
}

/// Whether slurmctld has an association for each of `users`, with their UID resolved.
pub fn controller_knows(assocs: &[ControllerAssoc], users: &[&str]) -> bool {
    users.iter().all(|want| {
        let theirs = || assocs.iter().filter_map(|a| a.user.as_ref()).filter(|(name, _)| name == want);
        theirs().next().is_some() && theirs().all(|(_, uid)| *uid != UNRESOLVED_UID)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: [&str; 2] = ["24.11", "26.05"];

    fn fixture(version: &str, name: &str) -> &'static str {
        match (version, name) {
            ("24.11", "assoc") => include_str!("fixtures/24.11-sacctmgr-assoc.json"),
            ("24.11", "users") => include_str!("fixtures/24.11-sacctmgr-users.json"),
            ("24.11", "assoc-mgr") => include_str!("fixtures/24.11-assoc-mgr.txt"),
            ("26.05", "assoc") => include_str!("fixtures/26.05-sacctmgr-assoc.json"),
            ("26.05", "users") => include_str!("fixtures/26.05-sacctmgr-users.json"),
            ("26.05", "assoc-mgr") => include_str!("fixtures/26.05-assoc-mgr.txt"),
            _ => panic!("no fixture {version}-{name}"),
        }
    }

    #[test]
    fn changes_render_as_sacctmgr_takes_them() {
        let args = |c: SacctmgrChange| c.args().join(" ");
        assert_eq!(args(SacctmgrChange::AddCluster { name: "lab".into() }), "add cluster lab");
        assert_eq!(
            args(SacctmgrChange::AddAccount { name: "physics".into(), cluster: "lab".into() }),
            "add account physics cluster=lab description=physics organization=physics"
        );
        let modify = |grp_tres: Option<&str>, max_jobs| SacctmgrChange::ModifyAccount {
            name: "physics".into(),
            cluster: "lab".into(),
            fairshare: 3,
            grp_tres: grp_tres.map(Into::into),
            max_jobs,
        };
        assert_eq!(
            args(modify(Some("cpu=8,gres/gpu=2"), Some(20))),
            "modify account where name=physics cluster=lab set fairshare=3 grptres=cpu=8,gres/gpu=2 grpjobs=20"
        );
        assert_eq!(
            args(modify(None, None)),
            "modify account where name=physics cluster=lab set fairshare=3 grpjobs=-1"
        );
        let user = |default_account| SacctmgrChange::AddUser {
            name: "alice".into(),
            account: "physics".into(),
            cluster: "lab".into(),
            default_account,
        };
        assert_eq!(args(user(true)), "add user alice account=physics cluster=lab defaultaccount=physics");
        assert_eq!(args(user(false)), "add user alice account=physics cluster=lab");
    }

    #[test]
    fn nothing_new_is_not_a_failure() {
        // As sacctmgr 24.11 and 26.05 print them (exit 1, on stdout).
        for said in [
            " This cluster lab already exists.  Not adding.\n",
            " Already existing account physics on cluster lab\n",
            "Request didn't affect anything\nNothing added.\nMake sure the accounts requested here have been added",
            " Modified account associations...\n  Nothing modified\n",
        ] {
            assert_eq!(outcome(1, said, ""), Some(Applied::AlreadySo), "{said}");
        }
        assert_eq!(outcome(0, " Adding User(s)\n  carol\n", ""), Some(Applied::Changed));
        assert_eq!(outcome(1, "", " error: No parent account 'nope' on cluster 'lab'\n"), None);
        assert_eq!(outcome(1, "", "sacctmgr: error: Sending PersistInit msg: Connection refused"), None);
    }

    #[test]
    fn associations_carry_shares_and_caps() {
        for v in VERSIONS {
            let assocs = parse_associations(fixture(v, "assoc")).unwrap();
            let find = |account: &str, user: Option<&str>| {
                assocs.iter().find(|a| a.account == account && a.user.as_deref() == user).unwrap()
            };
            let physics = find("physics", None);
            assert_eq!(physics.parent.as_deref(), Some("root"), "{v}");
            assert_eq!(physics.cluster, format!("wtdfx{}", v.replace('.', "")), "{v}");
            assert_eq!((physics.fairshare, physics.max_jobs), (2, Some(20)), "{v}");
            assert_eq!(physics.grp_tres.as_deref(), Some("cpu=8"), "{v}");
            let chem = find("chem", None);
            assert_eq!((chem.fairshare, chem.max_jobs, chem.grp_tres.as_deref()), (1, None, None), "{v}");
            let users: Vec<_> = assocs
                .iter()
                .filter_map(|a| Some((a.account.as_str(), a.user.as_deref()?)))
                .filter(|(_, u)| *u != "root")
                .collect();
            assert_eq!(users, [("chem", "alice"), ("chem", "bob"), ("physics", "alice")], "{v}");
        }
        assert!(parse_associations("physics|alice|").is_err());
    }

    #[test]
    fn users_carry_their_default_account() {
        for v in VERSIONS {
            let users = parse_sacctmgr_users(fixture(v, "users")).unwrap();
            let read: Vec<_> =
                users.iter().map(|u| (u.name.as_str(), u.default_account.as_deref())).collect();
            assert_eq!(
                read,
                [("alice", Some("physics")), ("bob", Some("chem")), ("root", Some("root"))],
                "{v}"
            );
        }
    }

    #[test]
    fn the_controller_knows_users_once_it_resolves_them() {
        for v in VERSIONS {
            let assocs = parse_assoc_mgr(fixture(v, "assoc-mgr"));
            assert_eq!(assocs.len(), 8, "{v}");
            assert_eq!(assocs[3].account, "chem", "{v}");
            assert_eq!(assocs[3].user, Some(("alice".into(), 1000)), "{v}");
            assert_eq!(assocs[0].user, None, "{v}");
            assert!(controller_knows(&assocs, &["alice", "bob"]), "{v}");
            assert!(!controller_knows(&assocs, &["alice", "carol"]), "{v}");
        }
        let unresolved =
            parse_assoc_mgr("ClusterName=lab Account=users UserName=carol(4294967294) Partition= ID=9\n");
        assert!(!controller_knows(&unresolved, &["carol"]));
        assert!(controller_knows(&unresolved, &[]));
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_runs_each_change_and_reports_each_status() {
        let changes = [
            SacctmgrChange::AddCluster { name: "lab".into() },
            SacctmgrChange::AddUser {
                name: "o'brien".into(),
                account: "physics".into(),
                cluster: "lab".into(),
                default_account: true,
            },
        ];
        let script = batch_script(&changes);
        assert_eq!(
            script,
            "sacctmgr -i 'add' 'cluster' 'lab' 2>&1; echo; echo @@slurmbox-sacctmgr-status=$?\n\
             sacctmgr -i 'add' 'user' 'o'\\''brien' 'account=physics' 'cluster=lab' 'defaultaccount=physics' 2>&1; \
             echo; echo @@slurmbox-sacctmgr-status=$?"
        );
        // What bash prints for it: the first already there (status 1), the second added.
        let printed = " This cluster lab already exists.  Not adding.\n\n@@slurmbox-sacctmgr-status=1\n\
                       Adding User(s)\n  o'brien\n\n@@slurmbox-sacctmgr-status=0\n";
        let done = split_batch(printed);
        assert_eq!(
            done,
            [
                (1, "This cluster lab already exists.  Not adding.".to_string()),
                (0, "Adding User(s)\n  o'brien".to_string())
            ]
        );
        assert_eq!(outcome(done[0].0, &done[0].1, ""), Some(Applied::AlreadySo));
        // A batch cut short reports only what ended.
        assert_eq!(split_batch("Adding Cluster(s)\n").len(), 0);
    }
}
