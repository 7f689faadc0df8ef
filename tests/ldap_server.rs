//! The LDAP server fixture itself (tests/common/ldap.rs): a real slapd, seeded, that
//! serves users with their ssh keys to a bound reader and hides passwords.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Instant;

use common::ldap::LdapServer;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDu4gUq3VFeP0oZ0WzWMOhlmoyM8QyiTjvG4xQ1Y9a7Z alice@laptop";

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("run docker")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A Docker network removed when dropped; declared before the server, so that the
/// server (dropped first) has left it by then.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.0]);
    }
}

#[test]
fn ldap_server_serves_users_and_their_keys_to_the_reader_only() {
    let name = common::unique_name("ldap");
    let net = Network(format!("{name}-net"));
    let started = Instant::now();
    let ldap = LdapServer::start(&name);
    eprintln!("ldap: server ready in {:.1?}", started.elapsed());
    ldap.add_user("alice", 5001, KEY);

    // The reader sees the user's key and uid.
    #[rustfmt::skip]
    let out = docker(&[
        "exec", &ldap.container, "ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", "ldap:///",
        "-D", &ldap.bind_dn, "-w", &ldap.bind_password, "-b", &ldap.base_dn,
        "(uid=alice)", "sshPublicKey", "uidNumber",
    ]);
    let found = text(&out);
    assert!(out.status.success(), "reader search failed: {found}");
    assert!(found.contains(&format!("sshPublicKey: {KEY}")), "no key for alice: {found}");
    assert!(found.contains("uidNumber: 5001"), "no uid for alice: {found}");

    // Nobody reads a password: not an anonymous client, not the reader (its own entry
    // has one). Anonymous clients see nothing of the database at all.
    for bind in [vec![], vec!["-D", &ldap.bind_dn, "-w", &ldap.bind_password]] {
        let mut args = vec!["exec", &ldap.container, "ldapsearch", "-x", "-LLL", "-H", "ldap:///"];
        args.extend(&bind);
        args.extend(["-b", &ldap.base_dn, "(objectClass=*)", "userPassword"]);
        let out = docker(&args);
        let found = text(&out);
        assert!(!found.contains("userPassword"), "userPassword readable with {bind:?}: {found}");
        if bind.is_empty() {
            assert!(!found.contains("uid=alice"), "anonymous search found alice: {found}");
        } else {
            assert!(out.status.success() && found.contains("cn=reader"), "reader search failed: {found}");
        }
    }

    let file = ldap.bind_password_file();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ldap.bind_password);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // Containers on a network the server joined reach it by its alias.
    let out = docker(&["network", "create", "--label", "io.slurmbox.lab=1", &net.0]);
    assert!(out.status.success(), "network create failed: {}", text(&out));
    ldap.connect(&net.0, "ldap-test");
    let image = common::ldap::ldap_image_tag();
    #[rustfmt::skip]
    let out = docker(&[
        "run", "--rm", "--label", "io.slurmbox.lab=1", "--network", &net.0, &image,
        "ldapsearch", "-x", "-LLL", "-H", "ldap://ldap-test/",
        "-D", &ldap.bind_dn, "-w", &ldap.bind_password, "-b", &ldap.base_dn, "(uid=alice)", "uidNumber",
    ]);
    let found = text(&out);
    assert!(
        out.status.success() && found.contains("uidNumber: 5001"),
        "search over the network failed: {found}"
    );
}
