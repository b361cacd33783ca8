//! A private single-member etcd (3.4 flags) on free 127.0.0.1 ports, with its data and log in
//! its own directory. Readiness is a successful `status()` through `etcd_client`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use super::ports::free_port;
use super::process::{ServerProcess, find_binary, run_blocking, start_with_retry};
use super::registry;

/// Longest etcd may take to answer `status()`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Member name, also used in `--initial-cluster`.
const MEMBER: &str = "dm-it";

/// A running private `etcd`; killed and removed on drop.
#[derive(Debug)]
pub struct Etcd {
    process: ServerProcess,
    client_port: u16,
}

impl Etcd {
    /// Starts etcd; blocks until it answers `status()`, panics with its log if it does not.
    pub fn start() -> Self {
        let etcd = find_binary("etcd", "etcd-server");
        start_with_retry("etcd", || {
            let dir = registry::new_server_dir("etcd");
            let [client_port, peer_port, metrics_port] = [(); 3].map(|()| free_port());
            let client_url = format!("http://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let mut command = Command::new(&etcd);
            command
                .args(["--name", MEMBER, "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("{MEMBER}={peer_url}")])
                .args([
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{metrics_port}"),
                ]);
            // ETCD_* variables would act as extra flags.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ETCD_") {
                    command.env_remove(key);
                }
            }
            let log = dir.path().join("etcd.log");
            let server = Etcd {
                process: ServerProcess::spawn("etcd", command, dir, log),
                client_port,
            };
            run_blocking(|| {
                server
                    .process
                    .wait_ready(START_TIMEOUT, || probe(client_url.clone()))
            })?;
            Ok(server)
        })
    }

    /// `http://127.0.0.1:PORT`, the client endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The `etcd` process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server's private directory: `data/` and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The last `lines` lines of `etcd.log`.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// A new client connected to this etcd.
    pub async fn client(&self) -> Client {
        Client::connect([self.endpoint()], None)
            .await
            .unwrap_or_else(|e| panic!("connect to etcd {}: {e}", self.endpoint()))
    }
}

/// The etcd shared by all tests of this test binary; give each test its own key prefix.
pub fn shared_etcd() -> &'static Etcd {
    static ETCD: OnceLock<Etcd> = OnceLock::new();
    ETCD.get_or_init(Etcd::start)
}

async fn probe(endpoint: String) -> Result<(), String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let mut client = Client::connect([endpoint], Some(options))
        .await
        .map_err(|e| e.to_string())?;
    client.status().await.map(drop).map_err(|e| e.to_string())
}
