//! The spec's accounting and site settings: `accounting` (slurmdbd and MariaDB, on by
//! default), `[[account]]` tables (research groups with their users, fair-share weight
//! and limits) and `[slurm_conf]` (lines an admin adds to slurm.conf as written).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::SpecError;
use super::check::{in_range, is_dns_label};

/// A Slurm account: a research group, its users, its share and its caps.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccountSpec {
    pub name: String,
    pub users: Vec<String>,
    /// Its fair-share weight among the accounts (Slurm's `Fairshare=`).
    pub fairshare: u32,
    /// Caps on what the whole group holds at once (`GrpTRES=`, e.g. "cpu=8,gres/gpu=2").
    pub grp_tres: Option<String>,
    /// How many jobs of the group may run at once (`GrpJobs=`).
    pub max_jobs: Option<u32>,
}

/// The account every user without one of their own belongs to.
pub const DEFAULT_ACCOUNT: &str = "users";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    name: Spanned<String>,
    #[serde(default)]
    users: Vec<Spanned<String>>,
    fairshare: Option<Spanned<i64>>,
    grp_tres: Option<Spanned<String>>,
    max_jobs: Option<Spanned<i64>>,
}

pub(super) fn check_accounts(
    raw: Vec<RawAccount>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<Vec<AccountSpec>, SpecError> {
    let mut accounts: Vec<AccountSpec> = Vec::new();
    for a in raw {
        let name = a.name.get_ref();
        if !is_dns_label(name, 32) || name == "root" {
            return Err(err(
                a.name.span(),
                format!("invalid account name {name:?}"),
                "use lowercase letters, digits and '-' (e.g. the research group's name); \"root\" is Slurm's own"
                    .into(),
            ));
        }
        if accounts.iter().any(|o| &o.name == name) {
            return Err(err(
                a.name.span(),
                format!("account {name:?} is listed twice"),
                "merge the two".into(),
            ));
        }
        for user in &a.users {
            if !is_dns_label(user.get_ref(), 32) {
                return Err(err(
                    user.span(),
                    format!("invalid user name {:?} in account {name:?}", user.get_ref()),
                    "name users as their [[user]] tables (or the directory) do".into(),
                ));
            }
        }
        let grp_tres = match &a.grp_tres {
            Some(t) => {
                let valid = t.get_ref().split(',').all(|kv| {
                    kv.split_once('=').is_some_and(|(k, v)| {
                        !k.is_empty()
                            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-:".contains(&b))
                            && v.parse::<u64>().is_ok()
                    })
                });
                if !valid {
                    return Err(err(
                        t.span(),
                        format!("account.grp_tres must be TRES=COUNT pairs, got {:?}", t.get_ref()),
                        "e.g. grp_tres = \"cpu=8,mem=64G\" is not allowed (counts only): \"cpu=8,gres/gpu=2\""
                            .into(),
                    ));
                }
                Some(t.get_ref().clone())
            }
            None => None,
        };
        accounts.push(AccountSpec {
            name: name.clone(),
            users: a.users.iter().map(|u| u.get_ref().clone()).collect(),
            fairshare: match &a.fairshare {
                Some(f) => in_range(f, 1, 1_000_000, "account.fairshare", err)? as u32,
                None => 1,
            },
            grp_tres,
            max_jobs: a
                .max_jobs
                .as_ref()
                .map(|m| in_range(m, 1, 1_000_000, "account.max_jobs", err))
                .transpose()?
                .map(|m| m as u32),
        });
    }
    Ok(accounts)
}

/// `[slurm_conf]`: each key and value as the site wrote it (numbers and booleans as
/// text). Keys slurmbox must own are refused, with what to do instead.
pub(super) fn check_slurm_conf(
    raw: &Spanned<toml::Table>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    for (key, value) in raw.get_ref() {
        if let Some(why) = crate::render::owned_key(key) {
            return Err(err(
                raw.span(),
                format!("slurm_conf.{key} is set by slurmbox itself"),
                format!("{why}; the README lists the keys slurmbox owns"),
            ));
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if *b { "YES" } else { "NO" }.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(err(
                    raw.span(),
                    format!("slurm_conf.{key} must be a string, number or boolean"),
                    "write the value as slurm.conf would hold it, e.g. SchedulerParameters = \"defer\""
                        .into(),
                ));
            }
        };
        if text.contains('\n') || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(
                raw.span(),
                format!("slurm_conf.{key} is not one slurm.conf line"),
                "keys are Slurm's parameter names (letters and digits), values one line".into(),
            ));
        }
        out.insert(key.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::spec::ClusterSpec;

    use crate::spec::error_of;

    #[test]
    fn accounts_and_site_settings() {
        let spec = ClusterSpec::parse(
            "c.toml",
            "accounting = false\n[[account]]\nname = \"physics\"\nusers = [\"alice\"]\nfairshare = 3\ngrp_tres = \"cpu=8,gres/gpu=2\"\nmax_jobs = 10\n[slurm_conf]\nMinJobAge = 600\nSchedulerParameters = \"defer\"\n",
        )
        .unwrap();
        assert!(!spec.accounting);
        assert_eq!(spec.accounts[0].fairshare, 3);
        assert_eq!(spec.accounts[0].grp_tres.as_deref(), Some("cpu=8,gres/gpu=2"));
        assert_eq!(spec.slurm_conf["MinJobAge"], "600");
        assert!(ClusterSpec::parse("c.toml", "").unwrap().accounting, "on by default");
        let e = error_of("[slurm_conf]\nClusterName = \"x\"\n");
        assert!(e.starts_with("cluster.toml:1:1: slurm_conf.ClusterName is set by slurmbox itself"), "{e}");
        let e = error_of("[[account]]\nname = \"a\"\ngrp_tres = \"cpu\"\n");
        assert!(e.contains("account.grp_tres must be TRES=COUNT pairs"), "{e}");
    }
}
