//! Private MariaDB servers for tests: an upstream with a ROW binlog and GTIDs, or a downstream
//! without binlog, each with its own data directory, port and socket.
//!
//! Start-up: `mariadb-install-db` into a fresh directory, `mariadbd --no-defaults` on a free
//! port, poll `SELECT 1` through the unix socket (root@localhost), create `root@127.0.0.1` with
//! an empty password (with `--skip-name-resolve` TCP logins never match `localhost`), then check
//! `SELECT 1` over TCP. Tests share one upstream and one downstream per test binary
//! ([`shared_upstream`], [`shared_downstream`]) and isolate themselves with a database each
//! ([`fresh_db`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use super::ports::free_port;
use super::process::{
    LOG_TAIL_LINES, ServerProcess, StartError, find_binary, run_blocking, start_with_retry,
};
use super::registry;

/// Longest a server may take to answer `SELECT 1`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Server ids handed out in this process; every server gets its own.
static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(1);

/// What a server is for, which decides its binlog settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Binlog on: ROW format, FULL row image, GTID domain 0.
    Upstream,
    /// Binlog off.
    Downstream,
}

/// A running private `mariadbd`; killed and removed on drop.
#[derive(Debug)]
pub struct MariaDb {
    process: ServerProcess,
    port: u16,
    server_id: u32,
    role: Role,
}

impl MariaDb {
    /// Starts a server with a ROW binlog (`mysql-bin.*`), FULL row image and GTIDs.
    pub fn start_upstream() -> Self {
        Self::start(Role::Upstream)
    }

    /// Starts a server without binlog.
    pub fn start_downstream() -> Self {
        Self::start(Role::Downstream)
    }

    /// Starts a server for `role`; blocks until it answers over TCP, panics with its log if it
    /// does not.
    pub fn start(role: Role) -> Self {
        let mariadbd = find_binary("mariadbd", "mariadb-server");
        let install_db = find_binary("mariadb-install-db", "mariadb-server");
        let server_id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        start_with_retry("mariadbd", || {
            let dir = registry::new_server_dir("mariadb");
            let data_dir = dir.path().join("data");
            install_data_dir(&install_db, &data_dir);
            let port = free_port();
            let mut command = Command::new(&mariadbd);
            command.args(server_args(dir.path(), port, server_id, role));
            let log = dir.path().join("error.log");
            let server = MariaDb {
                process: ServerProcess::spawn("mariadbd", command, dir, log),
                port,
                server_id,
                role,
            };
            run_blocking(|| server.bootstrap())?;
            Ok(server)
        })
    }

    /// Waits for the socket, lets root in over TCP, and checks TCP.
    async fn bootstrap(&self) -> Result<(), StartError> {
        let socket_opts: Opts = OptsBuilder::default()
            .socket(Some(self.socket().to_string_lossy()))
            .user(Some("root"))
            .into();
        self.process
            .wait_ready(START_TIMEOUT, || select_one(socket_opts.clone()))
            .await?;
        try_exec(
            socket_opts,
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
        )
        .await
        .unwrap_or_else(|e| panic!("create root@127.0.0.1 on port {}: {e}", self.port));
        self.process
            .wait_ready(START_TIMEOUT, || select_one(self.opts(None)))
            .await
    }

    /// Kills the server (as a crash would); [`Self::restart`] brings it back on the same port
    /// and data.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the server again after [`Self::stop`] and waits until it answers over TCP.
    pub fn restart(&mut self) {
        let mariadbd = find_binary("mariadbd", "mariadb-server");
        let mut command = Command::new(&mariadbd);
        command.args(server_args(
            self.process.dir(),
            self.port,
            self.server_id,
            self.role,
        ));
        self.process.respawn(command);
        let opts = self.opts(None);
        run_blocking(|| {
            self.process
                .wait_ready(START_TIMEOUT, || select_one(opts.clone()))
        })
        .unwrap_or_else(|e| panic!("restarting mariadbd: {}", e.message));
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `mariadbd` process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// This server's `server_id`, unique within the test process.
    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// Whether this is an upstream (binlog on) or a downstream.
    pub fn role(&self) -> Role {
        self.role
    }

    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Connection options for root over TCP, with `db` as the default database.
    pub fn opts(&self, db: Option<&str>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .db_name(db)
            .prefer_socket(false)
            .into()
    }

    /// A new root connection over TCP, without a default database.
    pub async fn conn(&self) -> Conn {
        connect(self.opts(None)).await
    }

    /// Runs `sql` (several `;`-separated statements are fine), panicking on error.
    pub async fn exec(&self, sql: &str) {
        exec_on(self.opts(None), sql).await;
    }

    /// Runs the query `sql` and returns its rows, panicking on error.
    pub async fn query_rows(&self, sql: &str) -> Vec<Row> {
        query_on(self.opts(None), sql).await
    }

    /// `CHECKSUM TABLE table` (qualify it: `db.t`); `None` if the table does not exist.
    pub async fn checksum(&self, table: &str) -> Option<i64> {
        checksum_on(self.opts(None), table).await
    }

    /// The server's private directory: data, socket, pid file and `error.log`.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The data directory (`--datadir`), where the binlog files are too.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("mariadbd.sock")
    }

    /// The last `lines` lines of `error.log`.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// The upstream shared by all tests of this test binary; use it through [`fresh_db`].
pub fn shared_upstream() -> &'static MariaDb {
    static UPSTREAM: OnceLock<MariaDb> = OnceLock::new();
    UPSTREAM.get_or_init(MariaDb::start_upstream)
}

/// The downstream shared by all tests of this test binary; use it through [`fresh_db`].
pub fn shared_downstream() -> &'static MariaDb {
    static DOWNSTREAM: OnceLock<MariaDb> = OnceLock::new();
    DOWNSTREAM.get_or_init(MariaDb::start_downstream)
}

/// A database of its own for one test on a shared server; dropped (best effort) on drop.
#[derive(Debug)]
pub struct TestDb {
    server: &'static MariaDb,
    name: String,
}

/// Creates a new database on `server` named `<prefix>_<counter>_<random hex>`.
/// `prefix` is lower-case ASCII letters, digits and `_`, at most 40 characters.
pub fn fresh_db(server: &'static MariaDb, prefix: &str) -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(1);
    assert!(
        prefix.len() <= 40
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "database prefix {prefix:?} must be [a-z0-9_]{{0,40}}"
    );
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = rand::random::<u32>() & 0xff_ffff;
    let name = format!("{prefix}_{counter}_{suffix:06x}");
    let sql = format!("CREATE DATABASE `{name}`");
    run_blocking(|| server.exec(&sql));
    TestDb { server, name }
}

impl TestDb {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server holding the database.
    pub fn server(&self) -> &'static MariaDb {
        self.server
    }

    /// Connection options with this database as the default.
    pub fn opts(&self) -> Opts {
        self.server.opts(Some(&self.name))
    }

    /// A new connection using this database.
    pub async fn conn(&self) -> Conn {
        connect(self.opts()).await
    }

    /// Runs `sql` in this database, panicking on error.
    pub async fn exec(&self, sql: &str) {
        exec_on(self.opts(), sql).await;
    }

    /// Runs the query `sql` in this database and returns its rows, panicking on error.
    pub async fn query_rows(&self, sql: &str) -> Vec<Row> {
        query_on(self.opts(), sql).await
    }

    /// `CHECKSUM TABLE` of `table` in this database; `None` if it does not exist.
    pub async fn checksum(&self, table: &str) -> Option<i64> {
        checksum_on(self.opts(), &format!("`{table}`")).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- mariadbd (port {}, database {}) last {LOG_TAIL_LINES} lines of error.log ---\n{}",
                self.server.port,
                self.name,
                self.server.log_tail(LOG_TAIL_LINES)
            );
        }
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        if let Err(e) = run_blocking(|| try_exec(self.server.opts(None), &sql)) {
            eprintln!("{sql}: {e}");
        }
    }
}

fn install_data_dir(install_db: &Path, data_dir: &Path) {
    // The bootstrap server gets a tmpdir of its own too (see `server_args`).
    let tmp = data_dir
        .parent()
        .expect("data dir has a parent")
        .join("tmp");
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    let output = Command::new(install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data_dir.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", install_db.display()));
    if !output.status.success() {
        let logs: String = std::fs::read_dir(data_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x == "err" || x == "log")
            })
            .map(|e| {
                format!(
                    "--- {} ---\n{}",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                )
            })
            .collect();
        panic!(
            "{} --datadir={} failed ({}):\n{}\n{}\n{logs}",
            install_db.display(),
            data_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn server_args(dir: &Path, port: u16, server_id: u32, role: Role) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "--no-defaults".to_owned(),
        "--user=root".to_owned(),
        format!("--datadir={}", path("data")),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--socket={}", path("mariadbd.sock")),
        format!("--pid-file={}", path("mariadbd.pid")),
        format!("--log-error={}", path("error.log")),
        format!("--server-id={server_id}"),
        // A tmpdir of its own: a starting mariadbd deletes every `#sql*` file in its tmpdir,
        // which in a shared /tmp are the temp tables of servers bootstrapping at that moment.
        format!("--tmpdir={}", path("tmp")),
    ];
    args.extend(
        [
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
        ]
        .map(str::to_owned),
    );
    let binlog: &[&str] = match role {
        Role::Upstream => &[
            "--log-bin=mysql-bin",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--log-slave-updates",
            "--gtid-domain-id=0",
        ],
        Role::Downstream => &["--skip-log-bin"],
    };
    args.extend(binlog.iter().map(|arg| (*arg).to_owned()));
    args
}

async fn select_one(opts: Opts) -> Result<(), String> {
    try_exec(opts, "SELECT 1").await.map_err(|e| e.to_string())
}

async fn connect(opts: Opts) -> Conn {
    Conn::new(opts.clone())
        .await
        .unwrap_or_else(|e| panic!("connect to {opts:?}: {e}"))
}

async fn try_exec(opts: Opts, sql: &str) -> Result<(), mysql_async::Error> {
    let mut conn = Conn::new(opts).await?;
    conn.query_drop(sql).await?;
    conn.disconnect().await
}

async fn exec_on(opts: Opts, sql: &str) {
    let mut conn = connect(opts).await;
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.disconnect().await.expect("disconnect");
}

async fn query_on(opts: Opts, sql: &str) -> Vec<Row> {
    let mut conn = connect(opts).await;
    let rows = conn
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.disconnect().await.expect("disconnect");
    rows
}

async fn checksum_on(opts: Opts, table: &str) -> Option<i64> {
    let sql = format!("CHECKSUM TABLE {table}");
    let rows = query_on(opts, &sql).await;
    let row = rows.first().unwrap_or_else(|| panic!("{sql}: no row"));
    row.get::<Option<i64>, _>(1)
        .unwrap_or_else(|| panic!("{sql}: unexpected row {row:?}"))
}
