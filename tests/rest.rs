//! Slurm's REST API on a real cluster: slurmrestd answers on the published port of the
//! controller's host, taking the tokens `scontrol token` (as a user on the login node)
//! and `slurmbox token` hand out; jobs submitted through it run as their user and are
//! accounted; a user cannot cancel another's job; no token, a malformed, an expired or
//! a forged one changes nothing; the JWT key stays on the controller (and slurmdbd).
//! A second cluster on the same engine gets the next free port, and a port the spec
//! names that another cluster holds is refused before anything changes. Slurm 26.05
//! answers too. `[rest] enabled = false` takes it all away again.
//!
//! Slurm's answers, as they are: a request without a token is refused by slurmrestd
//! itself (401); one with a token it cannot check (it has no key) goes to slurmctld,
//! which refuses it, and slurmrestd answers 511 with Slurm's "Protocol authentication
//! error" (1007). A cancel of another user's job answers 200 with "Access/permission
//! denied" for that job.

mod common;

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::http::http;
use common::{ClusterGuard, labelled_objects, slurmbox};

const KEY: &str = "/var/lib/slurmbox/jwt/jwt_hs256.key";
const API: &str = "/slurm/v0.0.42";

/// The headers that carry a user's token.
fn auth<'a>(user: &'a str, token: &'a str) -> [(&'a str, &'a str); 2] {
    [("X-SLURM-USER-NAME", user), ("X-SLURM-USER-TOKEN", token)]
}

/// Runs `cmd` as root on `node`, whatever its exit code.
fn as_root(cluster: &ClusterGuard, node: &str, cmd: &[&str]) -> common::Run {
    let mut args = vec!["--node", node, "--user", "root", "--"];
    args.extend(cmd);
    cluster.run(&["exec"], &args)
}

/// The token in `SLURM_JWT=...`, as `scontrol token` and `slurmbox token` print it.
fn token_of(printed: &str) -> String {
    printed
        .trim()
        .strip_prefix("SLURM_JWT=")
        .unwrap_or_else(|| panic!("not a token: {printed:?}"))
        .to_string()
}

/// A token of `user`'s own, from `scontrol token` on the login node.
fn scontrol_token(cluster: &ClusterGuard, user: &str) -> String {
    token_of(&cluster.sh_as(user, "scontrol token"))
}

/// The claims of a token (its middle part).
fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// HMAC-SHA256 (RFC 2104) of `msg` under a key of at most 64 bytes.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

/// A token for `user` as slurmctld makes them (HS256), signed with `key`.
fn signed_token(key: &[u8], user: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"exp": now + 600, "iat": now, "sun": user}).to_string());
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(key, format!("{header}.{payload}").as_bytes()));
    format!("{header}.{payload}.{signature}")
}

/// Brings a cluster up with alice and bob (`top`: more of the spec's top-level keys);
/// returns its spec file's folder (kept while the test runs) and the REST API's URL
/// from `status --json`.
fn up(cluster: &ClusterGuard, top: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"{}\"\n{top}[compute]\ncount = 1\n[[user]]\nname = \"alice\"\n[[user]]\nname = \"bob\"\n\
             [metrics]\nenabled = false\n",
            cluster.name
        ),
    )
    .unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let status: Value = serde_json::from_str(&cluster.run(&["status"], &["--json"]).ok().stdout).unwrap();
    let url = status["rest_url"].as_str().expect("status has the REST API's URL").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (dir, url)
}

/// Alice's batch job through the API runs as her UID; where the cluster has
/// accounting, it is in sacct and in the API's slurmdbd side (which checks her token
/// with the key slurmdbd mounts), else the API's slurmctld side tells its user.
fn submit_runs_as_the_user(cluster: &ClusterGuard, url: &str, token: &str, accounting: bool) {
    let job = json!({"job": {
        "name": "from-rest",
        "current_working_directory": "/home/alice",
        "environment": ["PATH=/usr/bin:/bin"],
        "script": "#!/bin/bash\nid -u",
    }});
    let answer = http(url, "POST", &format!("{API}/job/submit"), &auth("alice", token), &job.to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let id = answer.json()["job_id"].as_u64().expect("a job ID");
    let uid = cluster.sh_as("alice", "id -u").trim().to_string();
    let out = format!("cat slurm-{id}.out");
    assert_eq!(cluster.wait_as("alice", &out, "the job's output", |o| !o.is_empty()).trim(), uid);
    if !accounting {
        let job = http(url, "GET", &format!("{API}/job/{id}"), &auth("alice", token), "");
        let job = &job.json()["jobs"][0];
        assert_eq!((job["user_id"].to_string(), &job["user_name"]), (uid, &json!("alice")), "{job}");
        return;
    }
    let row =
        cluster.wait_as("alice", &format!("sacct -j {id} -X -n -P -o user,uid,state"), "the job", |o| {
            o.contains("COMPLETED")
        });
    assert_eq!(row.trim(), format!("alice|{uid}|COMPLETED"));
    let listed = http(url, "GET", "/slurmdb/v0.0.42/jobs", &auth("alice", token), "");
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<u64> =
        listed.json()["jobs"].as_array().unwrap().iter().filter_map(|j| j["job_id"].as_u64()).collect();
    assert!(ids.contains(&id), "slurmdbd lists the job: {ids:?}");
}

/// Alice lists jobs, and cannot cancel Bob's: it keeps running.
fn cancel_of_another_users_job_is_refused(cluster: &ClusterGuard, url: &str, token: &str) {
    let jobs = http(url, "GET", &format!("{API}/jobs"), &auth("alice", token), "");
    assert_eq!(jobs.status, 200, "{}", jobs.body);
    assert!(jobs.json()["jobs"].is_array(), "{}", jobs.body);
    assert!(jobs.json()["meta"]["slurm"]["release"].as_str().unwrap().starts_with("24.11."), "{}", jobs.body);
    let id = cluster.sh_as("bob", "sbatch --parsable -J bobs --wrap 'sleep 600'").trim().to_string();
    let state = format!("squeue -h -j {id} -o %T");
    cluster.wait_as("bob", &state, "Bob's job running", |o| o.trim() == "RUNNING");
    // Listed with its user's name (slurmrestd reads the cluster's accounts).
    let jobs = http(url, "GET", &format!("{API}/jobs"), &auth("alice", token), "").json();
    let listed = jobs["jobs"].as_array().unwrap().iter().find(|j| j["job_id"].as_u64() == id.parse().ok());
    assert_eq!(listed.map(|j| &j["user_name"]), Some(&json!("bob")), "{jobs}");
    let cancel = http(url, "DELETE", &format!("{API}/job/{id}"), &auth("alice", token), "");
    assert!(cancel.json().to_string().contains("Access/permission denied"), "{}", cancel.body);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cluster.sh_as("bob", &state).trim(), "RUNNING", "Bob's job was cancelled");
    cluster.sh_as("bob", &format!("scancel {id}"));
}

/// No token, a malformed, an expired and a forged one: refused, and nothing submitted.
/// A token signed with the cluster's own key is taken (so the forged one is refused
/// for its key alone).
fn bad_tokens_change_nothing(cluster: &ClusterGuard, url: &str, key: &[u8]) {
    let expired = token_of(&cluster.run(&["token"], &["alice", "--lifespan", "1s"]).ok().stdout);
    std::thread::sleep(Duration::from_secs(2));
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut random).unwrap();
    let forged = signed_token(&random, "alice");
    let refused = [
        ("none", vec![("X-SLURM-USER-NAME", "alice")], 401),
        ("malformed", auth("alice", "not.a.token").to_vec(), 511),
        ("expired", auth("alice", &expired).to_vec(), 511),
        ("forged", auth("alice", &forged).to_vec(), 511),
    ];
    for (what, headers, status) in &refused {
        let job = json!({"job": {"name": format!("bad-{what}"), "current_working_directory": "/tmp",
            "environment": ["PATH=/usr/bin:/bin"], "script": "#!/bin/bash\ntrue"}});
        let submit = http(url, "POST", &format!("{API}/job/submit"), headers, &job.to_string());
        let list = http(url, "GET", &format!("{API}/jobs"), headers, "");
        for answer in [&submit, &list] {
            assert_eq!(answer.status, *status, "{what} token: {}", answer.body);
        }
        if *status == 511 {
            assert!(list.body.contains("Protocol authentication error"), "{what}: {}", list.body);
        }
    }
    let all = cluster.sh_as("alice", "sacct -a -X -n -P -o jobname -S now-1hour; squeue -a -h -o %j");
    assert!(!all.contains("bad-"), "a job came in with a bad token:\n{all}");
    let own = signed_token(key, "alice");
    let taken = http(url, "GET", &format!("{API}/jobs"), &auth("alice", &own), "");
    assert_eq!(taken.status, 200, "the cluster's own key: {}", taken.body);
}

/// The JWT key: on the controller alone (of the Slurm nodes), slurm's and 0400, back to
/// that after its owner changed; in no container's configuration.
fn the_key_stays_on_the_controller(cluster: &ClusterGuard) -> Vec<u8> {
    let b64 = as_root(cluster, "controller", &["base64", "-w0", KEY]).ok().stdout;
    let key = STANDARD.decode(b64.trim()).unwrap();
    assert_eq!(key.len(), 32, "a key from the RNG");
    for node in ["login", "node1"] {
        assert_ne!(as_root(cluster, node, &["test", "-e", KEY]).code, 0, "the key is on {node}");
    }
    let ids = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=io.slurmbox.cluster={}", cluster.name)])
        .output()
        .unwrap();
    let ids = String::from_utf8(ids.stdout).unwrap();
    let inspect =
        std::process::Command::new("docker").arg("inspect").args(ids.split_whitespace()).output().unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).to_lowercase();
    assert!(inspect.contains(&format!("{}-rest", cluster.name)), "the REST container was inspected");
    assert!(!inspect.contains(&b64.trim().to_lowercase()) && !inspect.contains(&hex::encode(&key)));
    let rest = format!("{}-rest", cluster.name);
    let format = "{{range .Mounts}}{{.Name}} {{.RW}}{{end}}";
    let mounts =
        std::process::Command::new("docker").args(["inspect", "-f", format, &rest]).output().unwrap();
    let mounts = String::from_utf8_lossy(&mounts.stdout).trim().to_string();
    assert_eq!(mounts, format!("{}-accounts false", cluster.name), "slurmrestd has no key of any kind");
    // Its owner changed by hand: the controller's next start gives it back to slurm.
    let stat =
        || as_root(cluster, "controller", &["stat", "-c", "%u %a", KEY]).ok().stdout.trim().to_string();
    assert_eq!(stat(), "64030 400");
    as_root(cluster, "controller", &["chown", "root:root", KEY]).ok();
    as_root(cluster, "controller", &["chmod", "0644", KEY]).ok();
    let controller = format!("{}-controller", cluster.name);
    assert!(std::process::Command::new("docker").args(["restart", &controller]).status().unwrap().success());
    cluster.wait_as("alice", "scontrol ping", "the controller back", |o| o.contains("UP"));
    assert_eq!(stat(), "64030 400");
    key
}

/// A broken JSON body: a 4xx with Slurm's words, and the controller keeps running.
fn broken_json_is_refused(cluster: &ClusterGuard, url: &str, token: &str) {
    let answer =
        http(url, "POST", &format!("{API}/job/submit"), &auth("alice", token), r#"{"job": {"name": "#);
    assert!((400..500).contains(&answer.status), "{} {}", answer.status, answer.body);
    assert!(answer.body.contains("Unable to parse"), "{}", answer.body);
    assert!(cluster.sh_as("alice", "scontrol ping").contains("UP"));
    assert_eq!(http(url, "GET", &format!("{API}/jobs"), &auth("alice", token), "").status, 200);
}

/// Another cluster on the engine: the next free port; the port the first has, named
/// in a spec, refused before anything changes.
fn a_second_cluster_gets_another_port(first: &ClusterGuard, first_url: &str) {
    let port = first_url.rsplit(':').next().unwrap();
    let taken = ClusterGuard::new("rest-taken");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!("name = \"{}\"\n[metrics]\nenabled = false\n[rest]\nport = {port}\n", taken.name),
    )
    .unwrap();
    let refused = slurmbox(&["up", "-f", spec.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    // miette wraps lines (a cluster's name too): read it without them.
    let squashed: String = refused.stderr.chars().filter(|c| !c.is_whitespace() && *c != '│').collect();
    assert!(squashed.contains("[rest]port") && squashed.contains(&first.name), "{}", refused.stderr);
    assert_eq!(labelled_objects(&taken.name), Vec::<String>::new(), "nothing was made");

    // Slurm 26.05 beside it, without accounting (so without slurmdbd's part of the
    // API): its own port, and the same API.
    let second = ClusterGuard::new("rest26");
    let (_spec, url) = up(&second, "slurm = \"26.05\"\naccounting = false\n");
    assert_ne!(url, first_url);
    let token = scontrol_token(&second, "alice");
    let jobs = http(&url, "GET", &format!("{API}/jobs"), &auth("alice", &token), "");
    assert_eq!(jobs.status, 200, "{}", jobs.body);
    assert!(jobs.json()["meta"]["slurm"]["release"].as_str().unwrap().starts_with("26.05."), "{}", jobs.body);
    submit_runs_as_the_user(&second, &url, &token, false);
}

#[test]
fn the_rest_api_takes_tokens_runs_jobs_as_their_user_and_keeps_its_key() {
    let cluster = ClusterGuard::new("rest");
    let (dir, url) = up(&cluster, "");
    let token = scontrol_token(&cluster, "alice");
    assert_eq!(claims(&token)["sun"], "alice");
    submit_runs_as_the_user(&cluster, &url, &token, true);
    cancel_of_another_users_job_is_refused(&cluster, &url, &token);
    broken_json_is_refused(&cluster, &url, &token);

    // `slurmbox token`: an hour's token, taken as alice's.
    let printed = cluster.run(&["token"], &["alice", "--lifespan", "1h"]).ok().stdout;
    let admin = token_of(&printed);
    let c = claims(&admin);
    assert_eq!(
        (c["sun"].as_str(), c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap()),
        (Some("alice"), 3600)
    );
    assert_eq!(http(&url, "GET", &format!("{API}/jobs"), &auth("alice", &admin), "").status, 200);

    let key = the_key_stays_on_the_controller(&cluster);
    bad_tokens_change_nothing(&cluster, &url, &key);
    a_second_cluster_gets_another_port(&cluster, &url);

    // Off: no slurmrestd, no tokens in slurm.conf, and `slurmbox token` says why.
    let spec = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, format!("{text}[rest]\nenabled = false\n")).unwrap();
    slurmbox(&["up", "-f", spec.to_str().unwrap()]).ok();
    let objects = labelled_objects(&cluster.name);
    assert!(!objects.iter().any(|o| o.ends_with("-rest")), "{objects:?}");
    let conf = as_root(&cluster, "controller", &["cat", "/etc/slurm/slurm.conf"]).ok().stdout;
    assert!(!conf.contains("AuthAlt"), "{conf}");
    let refused = cluster.run(&["token"], &["alice"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("no REST API"), "{}", refused.stderr);
}

#[test]
fn hmac_matches_rfc_4231() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
