//! The spec's people: `[[user]]` tables (accounts slurmbox keeps on every node, with
//! their ssh keys), `[login]` (how they reach the login node over ssh) and `[ldap]`
//! (a directory that knows more users). Checked here like the rest of the spec; the
//! edits `slurmbox user add/remove` make to a spec file are in [`super::edit`].

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::SpecError;
use super::check::{in_range, is_dns_label};

/// An account slurmbox keeps on every node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
    /// The primary group's ID (default: the UID; a group of the user's name).
    pub gid: u32,
    /// Public keys that may log in to the login node over ssh, one line each.
    pub ssh_keys: Vec<String>,
    /// `false` once `slurmbox user remove` took the account's login away: it still
    /// owns its files and jobs, but nobody logs in as it.
    pub login: bool,
}

impl UserSpec {
    pub fn new(name: &str, uid: u32) -> UserSpec {
        UserSpec { name: name.into(), uid, gid: uid, ssh_keys: vec![], login: true }
    }
}

/// How users reach the login node: sshd on `ssh_port`, published on the controller's
/// host (on `ssh_address`, default every address).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LoginSpec {
    /// The port the spec names; `None`: [`DEFAULT_SSH_PORT`], or the next one free
    /// when another cluster on the host has it.
    pub ssh_port: Option<u16>,
    pub ssh_address: Option<IpAddr>,
}

pub const DEFAULT_SSH_PORT: u16 = 2222;

/// An LDAP directory every node resolves users and groups from (nslcd), and whose
/// `sshPublicKey` attributes the login node accepts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LdapSpec {
    /// `ldap://host[:port]` or `ldaps://host[:port]`, as the nodes reach it.
    pub uri: String,
    pub base_dn: String,
    /// Who the nodes bind as; `None`: anonymous.
    pub bind_dn: Option<String>,
    /// A file on the machine running slurmbox holding the bind password.
    pub bind_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the server's, for ldaps:// or StartTLS.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    name: Spanned<String>,
    uid: Option<Spanned<i64>>,
    gid: Option<Spanned<i64>>,
    ssh_keys: Option<Spanned<Vec<String>>>,
    login: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    ssh_port: Option<Spanned<i64>>,
    ssh_address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    uri: Spanned<String>,
    base_dn: Spanned<String>,
    bind_dn: Option<Spanned<String>>,
    bind_password_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

const RESERVED_USERS: &[&str] =
    &["root", "slurm", "munge", "nobody", "daemon", "bin", "sys", "sshd", "nslcd"];

/// The lowest and highest UID/GID a spec user may have.
pub const ID_RANGE: (u32, u32) = (1000, 60000);

/// Whether `line` looks like one OpenSSH public key: type, base64 blob, optional comment.
pub fn is_public_key(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return false;
    };
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    known
        && !line.contains(['\n', '\r'])
        && blob.len() >= 16
        && blob.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

pub(super) fn check_users(
    raw: Vec<RawUser>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<Vec<UserSpec>, SpecError> {
    let mut users: Vec<UserSpec> = Vec::new();
    for (i, user) in raw.into_iter().enumerate() {
        let name = user.name.get_ref();
        if !is_dns_label(name, 32) || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err(
                user.name.span(),
                format!("invalid user name {name:?}"),
                "use lowercase letters, digits and '-', starting with a letter".into(),
            ));
        }
        if RESERVED_USERS.contains(&name.as_str()) {
            return Err(err(
                user.name.span(),
                format!("user name {name:?} is reserved for the system"),
                "pick a personal account name; jobs never run as root or as a daemon account".into(),
            ));
        }
        if users.iter().any(|u| &u.name == name) {
            return Err(err(
                user.name.span(),
                format!("user {name:?} is listed twice"),
                "each [[user]] needs its own name".into(),
            ));
        }
        let (min, max) = (ID_RANGE.0 as i64, ID_RANGE.1 as i64);
        let uid = match &user.uid {
            Some(uid) => in_range(uid, min, max, "user.uid", err)? as u32,
            None => super::DEFAULT_UID + i as u32,
        };
        if users.iter().any(|u| u.uid == uid) {
            let span = user.uid.as_ref().map_or(user.name.span(), |u| u.span());
            return Err(err(
                span,
                format!("uid {uid} is used by two users"),
                "give every [[user]] its own uid (they must match across all nodes)".into(),
            ));
        }
        let gid = match &user.gid {
            Some(gid) => in_range(gid, min, max, "user.gid", err)? as u32,
            None => uid,
        };
        let ssh_keys = match user.ssh_keys {
            Some(keys) => {
                if let Some(bad) = keys.get_ref().iter().find(|k| !is_public_key(k)) {
                    return Err(err(
                        keys.span(),
                        format!("user {name:?} has an ssh key that is not a public key line: {bad:?}"),
                        "give each key as one line of a .pub file, e.g. \"ssh-ed25519 AAAA... alice@laptop\""
                            .into(),
                    ));
                }
                keys.into_inner().into_iter().map(|k| k.trim().to_string()).collect()
            }
            None => vec![],
        };
        users.push(UserSpec { name: name.clone(), uid, gid, ssh_keys, login: user.login.unwrap_or(true) });
    }
    Ok(users)
}

pub(super) fn check_login(
    raw: &RawLogin,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<LoginSpec, SpecError> {
    let mut login = LoginSpec::default();
    if let Some(port) = &raw.ssh_port {
        let number = in_range(port, 1, 65535, "login.ssh_port", err)? as u16;
        // Slurm's own ports: on a host's network sshd would take one from a daemon.
        if (6817..=6820).contains(&number) {
            return Err(err(
                port.span(),
                format!("login.ssh_port = {number} is one of Slurm's ports (6817-6820)"),
                "pick another port, e.g. the default 2222".into(),
            ));
        }
        login.ssh_port = Some(number);
    }
    if let Some(address) = &raw.ssh_address {
        login.ssh_address = Some(address.get_ref().parse().map_err(|_| {
            err(
                address.span(),
                format!("login.ssh_address must be an IP address, got {:?}", address.get_ref()),
                "name one of the controller host's addresses, e.g. \"192.168.0.106\" (default: all of them)"
                    .into(),
            )
        })?);
    }
    Ok(login)
}

pub(super) fn check_ldap(
    raw: RawLdap,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<LdapSpec, SpecError> {
    let uri = raw.uri.get_ref();
    let host = uri.strip_prefix("ldap://").or_else(|| uri.strip_prefix("ldaps://"));
    if !host.is_some_and(|h| !h.trim_end_matches('/').is_empty() && !h.contains(char::is_whitespace)) {
        return Err(err(
            raw.uri.span(),
            format!("invalid LDAP uri {uri:?}"),
            "use ldap://HOST[:PORT] or ldaps://HOST[:PORT], as the nodes reach the server".into(),
        ));
    }
    let dn_like = |s: &Spanned<String>, key: &str| {
        if s.get_ref().contains('=') && !s.get_ref().contains('\n') {
            Ok(s.get_ref().trim().to_string())
        } else {
            Err(err(
                s.span(),
                format!("ldap.{key} must be a DN such as \"dc=example,dc=org\", got {:?}", s.get_ref()),
                "write it as your directory names it".into(),
            ))
        }
    };
    let absolute = |s: &Spanned<String>, key: &str| {
        let p = PathBuf::from(s.get_ref());
        if p.is_absolute() {
            Ok(p)
        } else {
            Err(err(
                s.span(),
                format!("ldap.{key} must be an absolute path, got {:?}", s.get_ref()),
                "name the file on the machine that runs slurmbox".into(),
            ))
        }
    };
    let base_dn = dn_like(&raw.base_dn, "base_dn")?;
    let bind_dn = raw.bind_dn.as_ref().map(|d| dn_like(d, "bind_dn")).transpose()?;
    let bind_password_file =
        raw.bind_password_file.as_ref().map(|f| absolute(f, "bind_password_file")).transpose()?;
    match (&raw.bind_dn, &raw.bind_password_file) {
        (Some(dn), None) => {
            return Err(err(
                dn.span(),
                "ldap.bind_dn needs ldap.bind_password_file".into(),
                "put the password in a file only you can read (chmod 600) and name it here".into(),
            ));
        }
        (None, Some(f)) => {
            return Err(err(
                f.span(),
                "ldap.bind_password_file needs ldap.bind_dn".into(),
                "say whom the nodes bind as, e.g. bind_dn = \"cn=reader,dc=example,dc=org\"".into(),
            ));
        }
        _ => {}
    }
    let ca_file = raw.ca_file.as_ref().map(|f| absolute(f, "ca_file")).transpose()?;
    Ok(LdapSpec { uri: uri.trim_end_matches('/').to_string(), base_dn, bind_dn, bind_password_file, ca_file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterSpec;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8ZkZ6l0kqQm1o7b0Y2v3o5b6T5d8v2QxX1f0yZ9aB alice@laptop";

    use crate::spec::error_of;

    #[test]
    fn users_carry_groups_keys_and_login() {
        let spec = ClusterSpec::parse(
            "c.toml",
            &format!(
                "[[user]]\nname = \"alice\"\nuid = 2001\ngid = 3000\nssh_keys = [\"{KEY}\"]\n[[user]]\nname = \"bob\"\nuid = 2002\nlogin = false\n"
            ),
        )
        .unwrap();
        assert_eq!(
            spec.users[0],
            UserSpec { gid: 3000, ssh_keys: vec![KEY.into()], ..UserSpec::new("alice", 2001) }
        );
        assert_eq!(spec.users[1], UserSpec { login: false, ..UserSpec::new("bob", 2002) });
        assert_eq!(spec.login, LoginSpec { ssh_port: None, ssh_address: None });
    }

    #[test]
    fn a_key_must_be_a_public_key_line() {
        let e =
            error_of("[[user]]\nname = \"alice\"\nssh_keys = [\"-----BEGIN OPENSSH PRIVATE KEY-----\"]\n");
        assert!(
            e.starts_with("cluster.toml:3:12: user \"alice\" has an ssh key that is not a public key line"),
            "{e}"
        );
        assert!(is_public_key(KEY));
        assert!(!is_public_key("ssh-ed25519"));
    }

    #[test]
    fn login_and_ldap_are_checked() {
        let spec =
            ClusterSpec::parse("c.toml", "[login]\nssh_port = 2022\nssh_address = \"10.0.0.5\"\n").unwrap();
        assert_eq!(
            spec.login,
            LoginSpec { ssh_port: Some(2022), ssh_address: Some("10.0.0.5".parse().unwrap()) }
        );
        assert_eq!(
            error_of("[login]\nssh_port = 6818\n"),
            "cluster.toml:2:12: login.ssh_port = 6818 is one of Slurm's ports (6817-6820)"
        );
        assert_eq!(
            error_of("[login]\nssh_address = \"laptop\"\n"),
            "cluster.toml:2:15: login.ssh_address must be an IP address, got \"laptop\""
        );
        let ldap = "[ldap]\nuri = \"ldap://ldap.example.org/\"\nbase_dn = \"dc=example,dc=org\"\n";
        let spec = ClusterSpec::parse("c.toml", ldap).unwrap();
        assert_eq!(spec.ldap.as_ref().unwrap().uri, "ldap://ldap.example.org");
        assert_eq!(
            error_of(&format!("{ldap}bind_dn = \"cn=reader,dc=example,dc=org\"\n")),
            "cluster.toml:4:11: ldap.bind_dn needs ldap.bind_password_file"
        );
        assert_eq!(
            error_of("[ldap]\nuri = \"http://x\"\nbase_dn = \"dc=x\"\n"),
            "cluster.toml:2:7: invalid LDAP uri \"http://x\""
        );
        assert_eq!(
            error_of(&format!("{ldap}bind_dn = \"cn=r,dc=x\"\nbind_password_file = \"pw.txt\"\n")),
            "cluster.toml:5:22: ldap.bind_password_file must be an absolute path, got \"pw.txt\""
        );
    }
}
