//! A directory the cluster's users come from: every Slurm node resolves users and
//! groups from an existing LDAP server through nslcd (Debian's libnss-ldapd), beside
//! the accounts slurmbox keeps itself (see [`super::users`]), and the login node's
//! sshd takes their keys from its `sshPublicKey` attributes.
//!
//! The bind password is a secret: it is read from the file the spec names only while
//! the containers are created, written into each node's nslcd.conf (mode 0600, root's),
//! and is in no image, no variable, no plan and no spec hash.

use std::fmt;

use futures_util::future::try_join_all;

use super::PartError;
use super::{Config, Layout};
use crate::apply::Apply;
use crate::contract;
use crate::engine::{Engine, FileUpload};
use crate::plan::{Plan, PlannedFile, Role};
use crate::spec::LdapSpec;

/// Where the directory's CA certificate is placed in every node.
const CA_PATH: &str = "/etc/ssl/certs/slurmbox-ldap-ca.pem";

/// nslcd's settings, without the bind password (added when the file is written).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NslcdConf {
    pub uri: String,
    pub base: String,
    pub binddn: Option<String>,
    pub ca: Option<String>,
}

impl NslcdConf {
    pub fn new(ldap: &LdapSpec) -> NslcdConf {
        NslcdConf {
            uri: ldap.uri.clone(),
            base: ldap.base_dn.clone(),
            binddn: ldap.bind_dn.clone(),
            ca: ldap.ca_file.as_ref().map(|_| CA_PATH.to_string()),
        }
    }

    /// The file as nslcd reads it, with the bind password when there is one.
    pub fn with_password(&self, password: Option<&str>) -> String {
        let mut text = self.to_string();
        if let Some(password) = password {
            text += &format!("bindpw {password}\n");
        }
        text
    }
}

impl fmt::Display for NslcdConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox: users and groups from the cluster's LDAP directory.")?;
        writeln!(f, "uid nslcd")?;
        writeln!(f, "gid nslcd")?;
        writeln!(f, "uri {}", self.uri)?;
        writeln!(f, "base {}", self.base)?;
        if let Some(binddn) = &self.binddn {
            writeln!(f, "binddn {binddn}")?;
        }
        if let Some(ca) = &self.ca {
            writeln!(f, "tls_cacertfile {ca}")?;
            writeln!(f, "tls_reqcert demand")?;
        }
        // A directory that does not answer delays logins and job starts, never forever.
        writeln!(f, "bind_timelimit 5")?;
        writeln!(f, "timelimit 10")?;
        writeln!(f, "reconnect_invalidate passwd,group")?;
        // While it does not answer (a node starting before the directory is reachable),
        // a lookup fails after a second instead of retrying for ten.
        writeln!(f, "reconnect_sleeptime 1")?;
        writeln!(f, "reconnect_retrytime 1")?;
        // The daemons' own accounts never wait for it.
        writeln!(f, "nss_initgroups_ignoreusers ALLLOCAL")?;
        // Never the local accounts (root, the daemons) from the directory.
        writeln!(f, "nss_min_uid 1000")
    }
}

pub fn configure(layout: &Layout, config: &mut Config) {
    if layout.spec.ldap.is_some() {
        config.node_env.push(contract::env::var(contract::env::LDAP, 1));
        config.sshd.authorized_keys_command = Some(format!("{} %u", contract::LDAP_KEYS_PATH));
    }
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    let Some(ldap) = &layout.spec.ldap else {
        return;
    };
    let conf = NslcdConf::new(ldap);
    for c in plan.containers.iter_mut().filter(|c| c.role.is_slurm_node()) {
        c.files.push(PlannedFile {
            path: contract::NSLCD_CONF.into(),
            mode: 0o600,
            contents: conf.to_string(),
        });
        if c.role == Role::Login {
            c.files.push(PlannedFile {
                path: contract::LDAP_KEYS_PATH.into(),
                mode: 0o755,
                contents: contract::LDAP_KEYS_SCRIPT.into(),
            });
        }
    }
    plan.ldap = Some(ldap.clone());
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read {what} {path}: {source}")]
#[diagnostic(help("the spec's [ldap] names it; it must be readable by the user running slurmbox"))]
pub struct LdapFileError {
    what: &'static str,
    path: String,
    source: std::io::Error,
}

/// New nodes get nslcd.conf with the bind password, and the CA, before they start
/// (before any part starts the controller ahead of the others).
pub async fn on_created<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let Some(ldap) = &apply.plan.ldap else {
        return Ok(());
    };
    let created: Vec<_> = apply.starting().into_iter().filter(|c| c.role.is_slurm_node()).collect();
    if created.is_empty() {
        return Ok(());
    }
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| LdapFileError { what, path: path.display().to_string(), source })
    };
    let password = match &ldap.bind_password_file {
        Some(path) => {
            let bytes = read("the LDAP bind password file", path)?;
            Some(String::from_utf8_lossy(&bytes).trim_end_matches(['\r', '\n']).to_string())
        }
        None => None,
    };
    let conf = NslcdConf::new(ldap).with_password(password.as_deref());
    let mut files =
        vec![FileUpload { path: contract::NSLCD_CONF.into(), contents: conf.into_bytes(), mode: 0o600 }];
    if let Some(ca) = &ldap.ca_file {
        files.push(FileUpload {
            path: CA_PATH.into(),
            contents: read("the LDAP CA certificate", ca)?,
            mode: 0o644,
        });
    }
    try_join_all(created.iter().map(|c| apply.engines[c.host].upload(&c.name, &files))).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nslcd_conf_names_the_directory_and_keeps_the_password_out_of_the_plan() {
        let ldap = LdapSpec {
            uri: "ldap://ldap.example.org".into(),
            base_dn: "dc=example,dc=org".into(),
            bind_dn: Some("cn=reader,dc=example,dc=org".into()),
            bind_password_file: Some("/root/ldap.pw".into()),
            ca_file: Some("/root/ca.pem".into()),
        };
        let conf = NslcdConf::new(&ldap);
        let text = conf.to_string();
        assert!(text.contains(
            "uri ldap://ldap.example.org\nbase dc=example,dc=org\nbinddn cn=reader,dc=example,dc=org\n"
        ));
        assert!(text.contains("tls_cacertfile /etc/ssl/certs/slurmbox-ldap-ca.pem\n"));
        assert!(!text.contains("bindpw"));
        assert!(conf.with_password(Some("s3cret")).ends_with("bindpw s3cret\n"));
    }
}
