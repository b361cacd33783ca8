//! The binaries as processes: flags, coded errors for bad configs, and dm-master (with its own
//! etcd member) plus dm-worker starting healthy and cleaning up.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use dm::config::SecretKey;

use crate::harness::{
    BinProcess, DM_MASTER, DM_MIGRATE, DM_SYNCER, DM_WORKER, DMCTL, eventually_msg, free_port,
    pid_running,
};

const MASTER: &str = DM_MASTER;
const WORKER: &str = DM_WORKER;

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("binary runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("temp file written");
    p.display().to_string()
}

/// The flags a `--help` lists: every `-x`/`--xyz` that starts an option line.
fn listed_flags(help: &str) -> std::collections::BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.starts_with('-'))
                .map(|w| w.trim_end_matches(',').to_string())
        })
        .collect()
}

/// The subcommands a `--help` lists under `Commands:`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// `bin --help`: exits 0 and lists each of `flags` (as README.md documents them).
fn assert_help_lists(bin: &str, args: &[&str], flags: &[&str]) -> String {
    let out = run(bin, args);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = listed_flags(&help);
    for flag in flags {
        assert!(
            listed.contains(*flag),
            "{bin} {args:?} does not list {flag}: {listed:?}\n{help}"
        );
    }
    help
}

#[test]
fn help_and_version() {
    for bin in [MASTER, WORKER, DMCTL, DM_SYNCER, DM_MIGRATE] {
        let v = run(bin, &["--version"]);
        assert!(v.status.success(), "{bin} --version");
        assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    // README.md "The binaries" and "Cluster quick start": flags that also are config keys.
    assert_help_lists(
        MASTER,
        &["--help"],
        &[
            "--config",
            "--name",
            "--master-addr",
            "--advertise-addr",
            "--data-dir",
            "--peer-urls",
            "--initial-cluster",
            "--etcd-client-urls",
            "--etcd-endpoints",
            "--election-ttl",
            "--log-file",
            "-L",
            "--log-level",
            "--help",
            "--version",
        ],
    );
    assert_help_lists(
        WORKER,
        &["--help"],
        &[
            "--config",
            "--name",
            "--worker-addr",
            "--advertise-addr",
            "--join",
            "--etcd-endpoints",
            "--keepalive-ttl",
            "--log-file",
            "-L",
            "--log-level",
            "--help",
            "--version",
        ],
    );
    let help = assert_help_lists(
        DMCTL,
        &["--help"],
        &["--master-addr", "-s", "--source", "--help", "--version"],
    );
    // README.md "Cluster quick start": dmctl's commands.
    let commands = listed_commands(&help);
    for command in [
        "operate-source",
        "start-task",
        "check-task",
        "stop-task",
        "pause-task",
        "resume-task",
        "query-status",
        "list-member",
        "offline-member",
        "transfer-source",
        "encrypt",
    ] {
        assert!(
            commands.iter().any(|c| c == command),
            "dmctl --help does not list {command}: {commands:?}\n{help}"
        );
    }
    assert_help_lists(
        DMCTL,
        &["encrypt", "--help"],
        &["--secret-key-path", "--help"],
    );
    // README.md "dm-syncer" and "dm-migrate": the same options.
    for bin in [DM_SYNCER, DM_MIGRATE] {
        assert_help_lists(
            bin,
            &["--help"],
            &[
                "--task",
                "--source",
                "--secret-key-path",
                "-L",
                "--log-level",
                "--log-file",
                "--status-interval",
                "--help",
                "--version",
            ],
        );
    }
}

#[test]
fn bad_worker_config_exits_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "nmae = \"w1\"\nworker-addr = \"nowhere\"\njoin = \"127.0.0.1:8261\"\nkeepalive-ttl = 0\n",
    );
    let out = run(WORKER, &["--config", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[code=40003:class=dm-worker:scope=internal:level=medium]"),
        "{err}"
    );
    assert!(
        err.contains(&format!("dm-worker config `{bad}` has 4 problems")),
        "{err}"
    );
    for needle in [
        "[code=40004] `nmae`: unknown key",
        "`name`: name is empty",
        "[code=40002] `worker-addr`: `nowhere` is not host:port",
        "`keepalive-ttl`",
        "workaround:",
    ] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
}

#[test]
fn bad_master_config_and_missing_file_are_coded_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "m.toml",
        "name = \"m\"\nmaster-addr = \"127.0.0.1:99999\"\nunknown-thing = 1\n",
    );
    let out = run(MASTER, &["--config", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("[code=38013:class=dm-master"), "{err}");
    assert!(
        err.contains("[code=38011] `unknown-thing`: unknown key"),
        "{err}"
    );
    assert!(err.contains("[code=38035] `master-addr`"), "{err}");

    let out = run(WORKER, &["--config", "/nonexistent/dm-worker.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("[code=20018:class=config"), "{err}");
    assert!(err.contains("/nonexistent/dm-worker.toml"), "{err}");
    assert!(err.contains("Check the path"), "{err}");
}

#[test]
fn dmctl_encrypt_produces_dm_cipher_text() {
    let dir = tempfile::tempdir().unwrap();
    let hex = SecretKey::generate_hex();
    let key_path = write(dir.path(), "secret.key", &format!("{hex}\n"));
    let out = run(
        DMCTL,
        &["encrypt", "--secret-key-path", &key_path, "p@ss wörd"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cipher = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!cipher.contains("p@ss"));
    let key = SecretKey::from_hex(&hex).unwrap();
    assert_eq!(key.decrypt(&cipher).unwrap(), "p@ss wörd");

    let out = run(DMCTL, &["encrypt", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[code=20067"));
    let out = run(
        DMCTL,
        &[
            "encrypt",
            "--secret-key-path",
            &write(dir.path(), "short.key", "abcd"),
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key has 2 bytes, expected 32"));
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

#[tokio::test]
async fn master_with_own_etcd_and_worker_start_healthy_and_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let (master_port, peer, client, worker_port) =
        (free_port(), free_port(), free_port(), free_port());
    let data_dir = dir.path().join("m1");
    let mut master = BinProcess::spawn(
        MASTER,
        &[
            "--name".into(),
            "m1".into(),
            "--master-addr".into(),
            format!("127.0.0.1:{master_port}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--peer-urls".into(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-cluster".into(),
            format!("m1=http://127.0.0.1:{peer}"),
            "--etcd-client-urls".into(),
            format!("http://127.0.0.1:{client}"),
        ],
        dir.path().join("master.log"),
    );
    let status_url = format!("http://127.0.0.1:{master_port}/status");
    eventually_msg(Duration::from_secs(30), "dm-master healthy", || async {
        get_json(&status_url)
            .await
            .is_some_and(|s| s["etcd"]["healthy"] == true)
    })
    .await;
    let status = get_json(&status_url).await.unwrap();
    assert_eq!(status["name"], "m1");
    assert_eq!(
        status["etcd_endpoints"][0],
        format!("http://127.0.0.1:{client}")
    );

    // The embedded member is a real etcd: a client can use it.
    let mut etcd = etcd_client::Client::connect([format!("http://127.0.0.1:{client}")], None)
        .await
        .unwrap();
    etcd.put("probe", "1", None).await.unwrap();
    let etcd_pid = std::fs::read_to_string(data_dir.join("etcd.log"))
        .map(|_| ())
        .ok();
    assert!(etcd_pid.is_some(), "etcd log is in the data dir");
    let etcd_pids = pids_of("etcd", &data_dir);
    assert_eq!(etcd_pids.len(), 1, "one etcd child: {etcd_pids:?}");

    let mut worker = BinProcess::spawn(
        WORKER,
        &[
            "--name".into(),
            "w1".into(),
            "--worker-addr".into(),
            format!("127.0.0.1:{worker_port}"),
            "--join".into(),
            format!("127.0.0.1:{master_port}"),
        ],
        dir.path().join("worker.log"),
    );
    let wurl = format!("http://127.0.0.1:{worker_port}/status");
    eventually_msg(
        Duration::from_secs(30),
        "dm-worker sees its master",
        || async {
            get_json(&wurl).await.is_some_and(|s| {
                s["masters"][0]["reachable"] == true && s["masters"][0]["name"] == "m1"
            })
        },
    )
    .await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{worker_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dm_worker_start_time_seconds"),
        "{metrics}"
    );

    // SIGTERM stops the master gracefully, and it takes its etcd child with it.
    assert!(master.terminate().success());
    for pid in &etcd_pids {
        eventually_msg(Duration::from_secs(10), "etcd child gone", || async {
            !pid_running(*pid)
        })
        .await;
    }
    eventually_msg(
        Duration::from_secs(10),
        "worker notices the master is gone",
        || async {
            get_json(&wurl)
                .await
                .is_some_and(|s| s["masters"][0]["reachable"] == false)
        },
    )
    .await;
    assert!(worker.terminate().success());
}

/// Pids of running `name` processes whose command line mentions `path`.
fn pids_of(name: &str, path: &Path) -> Vec<u32> {
    let needle = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.split('\0')
                .next()
                .is_some_and(|exe| exe.ends_with(name))
                && cmd.contains(&needle)
        })
        .collect()
}
