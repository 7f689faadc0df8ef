//! A real OpenLDAP server (Debian's slapd) in a container, seeded for tests of
//! clusters whose accounts come from LDAP.
//!
//! The image (`slurmbox-lab/ldap:<digest>`) is built once per recipe from Debian's
//! archive with mmdebstrap, streamed into `docker import`, as the lab host image is
//! (see lab.rs); no registry is needed. It holds slapd and ldap-utils and no
//! configuration at all: each server makes its own cn=config and database when its
//! container starts, from LDIF files written here with fresh random passwords. So the
//! image holds no secret and no private key, and every server starts from scratch.
//!
//! What a server holds once [`LdapServer::start`] returns:
//! - the suffix `dc=slurmbox,dc=test` with `ou=people` and `ou=groups`;
//! - the schemas core, cosine, nis (RFC 2307), inetorgperson and openssh-lpk
//!   (objectClass `ldapPublicKey`, attribute `sshPublicKey`);
//! - `cn=reader,dc=slurmbox,dc=test`, a bind account that reads everything but
//!   `userPassword` (which nobody reads; it serves binds only). Anonymous clients read
//!   nothing of the database: a client that forgets to bind finds no users.
//! - an admin (the database's rootdn, password inside the container only) that
//!   [`LdapServer::add_user`] writes with.
//!
//! The container runs on the engine's default bridge with no published ports; a
//! cluster's containers reach it once it is attached to the cluster's network
//! ([`LdapServer::connect`]). Dropping the server removes its container, on success and
//! on panic alike; leftovers of a killed run carry the label `io.slurmbox.lab`.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

/// Repository of the LDAP server image; the tag is a digest of the recipe below.
const IMAGE_REPOSITORY: &str = "slurmbox-lab/ldap";
const SUITE: &str = "trixie";

const PACKAGES: &[&str] = &["slapd", "ldap-utils", "ca-certificates"];

/// Shell run by mmdebstrap on the finished tree (`$1` is its root).
const CUSTOMIZE: &[&str] = &[
    // Debian's postinst configures a database of its own (suffix from the build
    // machine's domain, a random admin password); each container makes its own config
    // instead (START), and slapadd -n0 wants an empty config folder.
    r#"rm -rf "$1"/etc/ldap/slapd.d/* "$1"/var/lib/ldap/*"#,
    // The image must hold no private key at all: fail the build if one slipped in.
    // (Its output goes to stderr: stdout is the image's tar stream.)
    r#"if grep -rlsI -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e 'PRIVATE KEY-----' "$1" >&2; then echo 'private key in the ldap image' >&2; exit 1; fi"#,
];

/// Where the seed files (LDIF, passwords) are copied into the container before it
/// starts; only root reads them (the folder keeps its 0700 mode).
const SEED: &str = "/root/seed";

/// The container's main process. The passwords are hashed ({SSHA}) inside the
/// container, where slappasswd is, so the database holds no clear text; the admin's
/// clear text stays in SEED for `ldapadd -y`. The databases are made offline with
/// slapadd, as root, then handed to the openldap user that slapd runs as. `-d 256`
/// (stats) keeps slapd in the foreground and logs each operation to `docker logs`.
const START: &str = r#"set -e
umask 077
s=/root/seed
sed "s|@ADMIN_HASH@|$(slappasswd -T $s/admin.pw)|" $s/config.ldif > /tmp/config.ldif
sed "s|@READER_HASH@|$(slappasswd -T $s/reader.pw)|" $s/data.ldif > /tmp/data.ldif
mkdir -p /etc/ldap/slapd.d /var/lib/ldap /run/slapd
slapadd -n0 -F /etc/ldap/slapd.d -l /tmp/config.ldif
slapadd -n1 -F /etc/ldap/slapd.d -l /tmp/data.ldif
rm -f /tmp/config.ldif /tmp/data.ldif
chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap /run/slapd
exec slapd -d 256 -h ldap:/// -u openldap -g openldap -F /etc/ldap/slapd.d"#;

const BASE_DN: &str = "dc=slurmbox,dc=test";
const READER_DN: &str = "cn=reader,dc=slurmbox,dc=test";
const ADMIN_DN: &str = "cn=admin,dc=slurmbox,dc=test";

/// The cn=config database, for `slapadd -n0`. The openssh-lpk schema is the one
/// OpenSSH-LPK and SSSD use (same OIDs as the openssh-lpk_openldap.schema that
/// distributions ship). ACLs: `userPassword` serves binds only; every bound client
/// (the reader) reads the rest; the rootdn (admin) bypasses ACLs and writes.
/// cn=config itself is closed to everyone over the network.
const CONFIG_LDIF: &str = "\
dn: cn=config
objectClass: olcGlobal
cn: config
olcArgsFile: /run/slapd/slapd.args
olcPidFile: /run/slapd/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: cn=openssh-lpk,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: openssh-lpk
olcAttributeTypes: ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
  DESC 'OpenSSH public key' EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
olcObjectClasses: ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey'
  DESC 'OpenSSH LPK objectclass' SUP top AUXILIARY MAY sshPublicKey )

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: /var/lib/ldap
olcSuffix: dc=slurmbox,dc=test
olcRootDN: cn=admin,dc=slurmbox,dc=test
olcRootPW: @ADMIN_HASH@
olcDbIndex: objectClass eq
olcDbIndex: uid,uidNumber,gidNumber,memberUid eq
olcDbIndex: cn eq
olcAccess: {0}to attrs=userPassword by anonymous auth by * none
olcAccess: {1}to * by users read by * none
";

/// The database's first entries, for `slapadd -n1`.
const DATA_LDIF: &str = "\
dn: dc=slurmbox,dc=test
objectClass: dcObject
objectClass: organization
dc: slurmbox
o: slurmbox tests

dn: ou=people,dc=slurmbox,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=slurmbox,dc=test
objectClass: organizationalUnit
ou: groups

dn: cn=reader,dc=slurmbox,dc=test
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
description: read-only bind account
userPassword: @READER_HASH@
";

/// How long slapd may take to answer after its container starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One slapd in its own container. Removed when dropped.
pub struct LdapServer {
    /// The container's name on the machine's engine: `{name}-ldap`.
    pub container: String,
    /// `dc=slurmbox,dc=test`.
    pub base_dn: String,
    /// The read-only bind account: `cn=reader,dc=slurmbox,dc=test`.
    pub bind_dn: String,
    /// Its password (random, 32 hex digits).
    pub bind_password: String,
    /// Holds the seed files before they are copied in, and the bind password file.
    dir: TempDir,
}

use super::images::{docker, docker_ok};

/// 32 hex digits from the kernel's random source.
fn random_password() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    hex::encode(bytes)
}

/// The LDAP server's image.
const IMAGE: super::images::TestImage = super::images::TestImage {
    repository: IMAGE_REPOSITORY,
    what: "ldap server",
    suite: SUITE,
    packages: PACKAGES,
    customize: CUSTOMIZE,
};

/// `slurmbox-lab/ldap:<12 hex digits of the recipe's digest>`.
pub fn ldap_image_tag() -> String {
    IMAGE.tag()
}

/// Returns the image's tag, building it first if the engine lacks it (once, whatever
/// runs in parallel).
pub fn ensure_ldap_image() -> String {
    IMAGE.ensure()
}

/// Writes `text` to a new file of mode 0600 (no one else may read a password).
fn write_private(path: &std::path::Path, text: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl LdapServer {
    /// Builds the image if needed and starts slapd in a new container `{name}-ldap` on
    /// the default bridge, seeded (see the module's documentation); returns once it
    /// answers a search bound as the reader.
    pub fn start(name: &str) -> LdapServer {
        let image = ensure_ldap_image();
        let dir =
            tempfile::Builder::new().prefix("slurmbox-ldap-").tempdir().expect("create the ldap tempdir");
        let seed = dir.path().join("seed");
        // 0700 like the tempdir; `docker cp` keeps the mode.
        std::fs::create_dir(&seed).expect("create the seed folder");
        let admin_password = random_password();
        let server = LdapServer {
            container: format!("{name}-ldap"),
            base_dn: BASE_DN.to_string(),
            bind_dn: READER_DN.to_string(),
            bind_password: random_password(),
            dir,
        };
        // No trailing newline: `slappasswd -T` and `ldapadd -y` take the whole file.
        write_private(&seed.join("admin.pw"), &admin_password);
        write_private(&seed.join("reader.pw"), &server.bind_password);
        write_private(&seed.join("config.ldif"), CONFIG_LDIF);
        write_private(&seed.join("data.ldif"), DATA_LDIF);

        // From here on, dropping `server` (a panic included) removes the container.
        #[rustfmt::skip]
        docker_ok(&[
            "create", "--name", &server.container, "--hostname", "ldap",
            "--label", "io.slurmbox.lab=1",
            &image, "sh", "-c", START,
        ]);
        let seed = seed.to_str().expect("utf-8 tempdir path");
        docker_ok(&["cp", seed, &format!("{}:{SEED}", server.container)]);
        docker_ok(&["start", &server.container]);
        server.wait_ready();
        server
    }

    /// Polls until slapd answers a base search bound as the reader; panics with the
    /// container's log when slapd exited (a bad seed) or after READY_TIMEOUT.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pw = format!("{SEED}/reader.pw");
        #[rustfmt::skip]
        let search = [
            "exec", &self.container, "ldapsearch", "-x", "-LLL", "-H", "ldap:///",
            "-D", READER_DN, "-y", &pw, "-b", BASE_DN, "-s", "base", "dn",
        ];
        loop {
            let out = docker(&search);
            if out.status.success() {
                return;
            }
            let running = docker(&["inspect", "--format", "{{.State.Running}}", &self.container]);
            let exited = String::from_utf8_lossy(&running.stdout).trim() == "false";
            if exited || Instant::now() > deadline {
                let logs = docker(&["logs", "--tail", "40", &self.container]);
                panic!(
                    "slapd in {} not ready ({})\n--- last ldapsearch\n{}{}\n--- container log\n{}{}",
                    self.container,
                    if exited { "it exited".to_string() } else { format!("after {READY_TIMEOUT:?}") },
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Attaches the container to `network` (which must exist) under the DNS name
    /// `alias`: containers on that network reach the server as `ldap://ALIAS/`.
    pub fn connect(&self, network: &str, alias: &str) {
        docker_ok(&["network", "connect", "--alias", alias, network, &self.container]);
    }

    /// Adds user `name`: `uid=NAME,ou=people,...` (inetOrgPerson, posixAccount,
    /// ldapPublicKey; uidNumber = gidNumber = `uid`, home /home/NAME, shell /bin/bash,
    /// sshPublicKey = `ssh_public_key`) and its group `cn=NAME,ou=groups,...`
    /// (posixGroup, gidNumber `uid`). Written as the admin, over ldap:/// inside the
    /// container.
    pub fn add_user(&self, name: &str, uid: u32, ssh_public_key: &str) {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "not a user name for LDAP: {name:?}"
        );
        let key = ssh_public_key.trim();
        assert!(!key.contains('\n'), "an ssh public key is one line: {key:?}");
        // Base64 (`::`): a key line's comment may hold anything LDIF would misread.
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let base = &self.base_dn;
        let ldif = format!(
            "dn: uid={name},ou=people,{base}\n\
             objectClass: inetOrgPerson\nobjectClass: posixAccount\nobjectClass: ldapPublicKey\n\
             uid: {name}\ncn: {name}\nsn: {name}\n\
             uidNumber: {uid}\ngidNumber: {uid}\n\
             homeDirectory: /home/{name}\nloginShell: /bin/bash\n\
             sshPublicKey:: {key}\n\n\
             dn: cn={name},ou=groups,{base}\n\
             objectClass: posixGroup\ncn: {name}\ngidNumber: {uid}\n"
        );
        let pw = format!("{SEED}/admin.pw");
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.container,
                "ldapadd",
                "-x",
                "-H",
                "ldap:///",
                "-D",
                ADMIN_DN,
                "-y",
                &pw,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker exec ldapadd");
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).expect("write the ldif to ldapadd");
        let out = child.wait_with_output().expect("wait for ldapadd");
        assert!(
            out.status.success(),
            "ldapadd of user {name} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The bind password in a file of mode 0600 (no trailing newline) in the server's
    /// tempdir, which lives as long as the server; the same path on every call.
    pub fn bind_password_file(&self) -> PathBuf {
        let path = self.dir.path().join("bind-password");
        if !path.exists() {
            write_private(&path, &self.bind_password);
        }
        path
    }
}

impl Drop for LdapServer {
    fn drop(&mut self) {
        let out = docker(&["rm", "-f", "-v", &self.container]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A container that a failed start never created is fine to miss.
        if !out.status.success() && !stderr.contains("No such container") {
            eprintln!("ldap {}: removing its container failed: {stderr}", self.container);
        }
    }
}
