//! Tests over whole files: the samples in `config/`, and bad files reporting every problem.

use std::path::{Path, PathBuf};

use super::*;

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_sample_config_parses_and_validates() {
    let files = samples();
    assert!(files.len() >= 6, "expected the sample set, found {files:?}");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let result = if name.starts_with("dm-master") && name.ends_with(".toml") {
            MasterConfig::load(&f).map(drop)
        } else if name.starts_with("dm-worker") && name.ends_with(".toml") {
            WorkerConfig::load(&f).map(drop)
        } else if name.starts_with("source") && name.ends_with(".yaml") {
            SourceConfig::load(&f).map(drop)
        } else if name.starts_with("task") && name.ends_with(".yaml") {
            TaskConfig::load(&f).map(|t| assert!(!t.subtasks().is_empty()))
        } else {
            panic!(
                "config/{name}: no test knows this kind of file; name it dm-master*/dm-worker*/source*/task*"
            );
        };
        if let Err(e) = result {
            panic!("config/{name} does not validate:\n{}", e.report());
        }
    }
}

const GOOD_TASK: &str = r#"
name: t1
task-mode: incremental
target-database: {host: 127.0.0.1, port: 3306, user: root, password: ""}
routes:
  r1: {schema-pattern: "db_*", target-schema: db}
filters:
  f1: {schema-pattern: "db_*", events: ["delete"], action: Ignore}
mysql-instances:
  - source-id: s1
    route-rules: [r1]
    filter-rules: [f1]
    meta: {binlog-name: mysql-bin.000001, binlog-pos: 4}
"#;

#[test]
fn unknown_key_missing_route_and_bad_regex_come_back_as_one_error() {
    let bad = GOOD_TASK
        .replace(
            "task-mode: incremental",
            "task-mode: incremental\nworker-cnt: 3",
        )
        .replace("route-rules: [r1]", "route-rules: [r1, r9]")
        .replace(
            "events: [\"delete\"]",
            "events: [\"delete\"], sql-pattern: [\"^DROP (\"]",
        );
    let err = TaskConfig::from_yaml(&bad, "bad-task.yaml").unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code, codes::CONFIG_YAML_TRANSFORM.code, "{msg}");
    assert!(
        msg.contains("task config `bad-task.yaml` has 3 problems"),
        "{msg}"
    );
    assert!(
        msg.contains("[code=20901] `worker-cnt`: unknown key"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "[code=20023] `mysql-instances[0].route-rules[1]`: `r9` is not defined in `routes`"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("[code=20903] `filters.f1.sql-pattern[0]`: bad regular expression `^DROP (`"),
        "{msg}"
    );
}

#[test]
fn each_problem_alone_has_its_own_code() {
    let cases = [
        (
            GOOD_TASK.replace("name: t1", "name: t1\nmeta-schma: x"),
            20901,
            "meta-schma",
        ),
        (
            GOOD_TASK.replace(
                "route-rules: [r1]",
                "route-rules: [nope]\n    block-allow-list: ba",
            ),
            20023,
            "nope",
        ),
        (
            GOOD_TASK.replace("task-mode: incremental", "task-mode: sometimes"),
            20020,
            "sometimes",
        ),
        (
            GOOD_TASK.replace("source-id: s1", &format!("source-id: {}", "x".repeat(33))),
            20006,
            "33 characters",
        ),
        (
            GOOD_TASK.replace("task-mode: incremental", "task-mode: incremental\nshard-mode: pessimistic\nstrict-optimistic-shard-mode: true"),
            20066,
            "needs shard-mode optimistic",
        ),
    ];
    for (text, code, needle) in cases {
        let err = TaskConfig::from_yaml(&text, "t.yaml").unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
        if code != 20023 {
            assert_eq!(err.code, code, "{err}");
        }
    }
}

#[test]
fn unused_global_rules_and_bad_durations_are_reported() {
    let text = GOOD_TASK.replace(
        "mysql-instances:",
        "syncers:\n  s: {safe-mode-duration: 10 minutes}\nmysql-instances:",
    );
    let err = TaskConfig::from_yaml(&text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[code=20060] `syncers.s.safe-mode-duration`"),
        "{err}"
    );
    assert!(
        err.contains(
            "[code=20038] `syncers.s`: `s` is defined but no mysql-instances item uses it"
        ),
        "{err}"
    );
}

#[test]
fn task_expands_into_one_subtask_per_source_with_rules_resolved() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/task-shard-merge.yaml");
    let task = TaskConfig::load(&path).unwrap();
    assert_eq!(task.shard(), Some(task::ShardMode::Pessimistic));
    let subs = task.subtasks();
    assert_eq!(
        subs.iter()
            .map(|s| s.source_id.as_str())
            .collect::<Vec<_>>(),
        ["mariadb-01", "mariadb-02"]
    );
    for s in &subs {
        assert_eq!(s.route_rules.len(), 2);
        assert_eq!(s.route_rules[1].target_table, "orders");
        assert_eq!(s.syncer.worker_count, 8);
        assert_eq!(s.loader.dir, "./dumped_data.shard-merge");
        assert!(s.block_allow_list.as_ref().unwrap().do_dbs[0].starts_with('~'));
        let back = SubTaskConfig::from_toml(&s.to_toml().unwrap()).unwrap();
        assert_eq!(&back, s);
    }
    assert_eq!(subs[1].meta.as_ref().unwrap().binlog_gtid, "0-1-1");

    let src_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/source-mariadb-gtid.yaml");
    let src = SourceConfig::load(&src_path).unwrap();
    let mut s = subs[1].clone();
    s.apply_source(&src);
    assert_eq!(s.flavor, "mariadb");
    assert!(s.enable_gtid);
    assert_eq!(s.filter_rules.len(), 1, "the source's filter is merged in");
    assert_eq!(s.from.as_ref().unwrap().port, 3307);
}

#[test]
fn unit_thread_overrides_and_defaults() {
    let text = GOOD_TASK.replace(
        "route-rules: [r1]",
        "route-rules: [r1]\n    syncer-thread: 3\n    loader-thread: 5",
    );
    let t = TaskConfig::from_yaml(&text, "t.yaml").unwrap();
    let s = &t.subtasks()[0];
    assert_eq!(
        (s.syncer.worker_count, s.syncer.batch, s.loader.pool_size),
        (3, 100, 5)
    );
    assert_eq!(
        s.syncer.safe_mode_window(),
        std::time::Duration::from_secs(60)
    );
    assert_eq!(t.meta_schema, "dm_meta");
    assert!(t.online_ddl && t.clean_dump_file);
    assert_eq!(t.shadow_table_rules, task::DEFAULT_SHADOW_TABLE_RULES);
}

#[test]
fn source_problems_are_all_reported() {
    let text = format!(
        "source-id: {}\nflavor: oracle\nfrom: {{port: 3306}}\nchecker: {{backoff-min: 10m, backoff-max: 1m, check-interval: soon}}\nrelay-binlog-gtid: nonsense\n",
        "s".repeat(40)
    );
    let err = SourceConfig::from_yaml(&text, "source.yaml")
        .unwrap_err()
        .to_string();
    for needle in [
        "[code=20006] `source-id`",
        "[code=11010] `flavor`",
        "`from.host`",
        "`from.user`",
        "[code=20904] `checker.check-interval`",
        "[code=20043] `checker.backoff-max`",
        "[code=11009] `relay-binlog-gtid`",
    ] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
}

#[test]
fn encrypted_passwords_are_accepted() {
    let key = SecretKey::from_hex(&SecretKey::generate_hex()).unwrap();
    let text = GOOD_TASK.replace(
        "password: \"\"",
        &format!("password: \"{}\"", key.encrypt("s3cret")),
    );
    let t = TaskConfig::from_yaml(&text, "t.yaml").unwrap();
    let pw = &t.target_database.as_ref().unwrap().password;
    assert_eq!(pw.plain(Some(&key)), "s3cret");
    assert!(!format!("{t:?}").contains("s3cret"));
}

#[test]
fn worker_config_problems_are_all_reported() {
    let err = WorkerConfig::from_toml(
        "nmae = \"w\"\nworker-addr = \"nowhere\"\nkeepalive-ttl = 0\n",
        "bad.toml",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("dm-worker config `bad.toml` has 5 problems"),
        "{msg}"
    );
    for needle in [
        "[code=40004] `nmae`: unknown key",
        "`name`",
        "`join`",
        "`worker-addr`",
        "`keepalive-ttl`",
    ] {
        assert!(msg.contains(needle), "missing {needle} in:\n{msg}");
    }
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn master_config_problems_are_all_reported() {
    let err = MasterConfig::from_toml("master-addr = \"x\"\npeer-urls = \"ftp://a\"\nrpc-timeout = \"never\"\n[experimental]\nopenapi2 = true\n", "m.toml")
        .unwrap_err()
        .to_string();
    for needle in [
        "[code=38011] `experimental.openapi2`",
        "[code=38035] `master-addr`",
        "`peer-urls`",
        "`rpc-timeout`",
    ] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
}
