//! The etcd member a dm-master runs as a child process (DM embeds etcd; we run the real
//! `etcd` binary so three masters form a real etcd cluster). The child's output goes to
//! `<data-dir>/etcd.log`; dropping the handle kills it, and on Linux the kernel kills it
//! (`PR_SET_PDEATHSIG`) when dm-master dies in any way, `kill -9` included.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::error::{DmError, codes};

/// How to start the member.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub binary: String,
    pub name: String,
    pub data_dir: PathBuf,
    /// Client URLs to listen on and advertise (comma-separated).
    pub client_urls: String,
    pub peer_urls: String,
    pub advertise_peer_urls: String,
    pub initial_cluster: String,
    pub initial_cluster_state: String,
    pub quota_backend_bytes: u64,
    pub max_txn_ops: u32,
    pub max_request_bytes: u64,
    pub auto_compaction_mode: String,
    pub auto_compaction_retention: String,
}

/// Makes the kernel SIGKILL the child when the thread that spawned it exits (Linux's
/// `PR_SET_PDEATHSIG`), so an etcd member never outlives its dm-master. The signal is tied to
/// the spawning *thread*: spawn from the main thread (dm-master's System), not from a
/// short-lived one. If the parent already died before `prctl` ran, the child exits at once.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid, _exit).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// A running etcd child.
pub struct EtcdMember {
    child: Child,
    log: PathBuf,
    client_urls: Vec<String>,
}

impl EtcdMember {
    /// Starts the child; it is ready once [`super::connect`] to [`Self::client_urls`] succeeds.
    pub fn spawn(cfg: &MemberConfig) -> Result<Self, DmError> {
        let fail = |what: String, e: std::io::Error| {
            DmError::new(&codes::MASTER_START_SERVICE, what).with_cause(e)
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            fail(
                format!("cannot create data-dir `{}`", cfg.data_dir.display()),
                e,
            )
        })?;
        let log = cfg.data_dir.join("etcd.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| fail(format!("cannot open `{}`", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| fail("cannot duplicate the etcd log handle".into(), e))?;
        let mut cmd = Command::new(&cfg.binary);
        die_with_parent(&mut cmd);
        let child = cmd
            .arg("--name").arg(&cfg.name)
            .arg("--data-dir").arg(cfg.data_dir.join("etcd"))
            .arg("--listen-client-urls").arg(&cfg.client_urls)
            .arg("--advertise-client-urls").arg(&cfg.client_urls)
            .arg("--listen-peer-urls").arg(&cfg.peer_urls)
            .arg("--initial-advertise-peer-urls").arg(&cfg.advertise_peer_urls)
            .arg("--initial-cluster").arg(&cfg.initial_cluster)
            .arg("--initial-cluster-state").arg(&cfg.initial_cluster_state)
            .arg("--quota-backend-bytes").arg(cfg.quota_backend_bytes.to_string())
            .arg("--max-txn-ops").arg(cfg.max_txn_ops.to_string())
            .arg("--max-request-bytes").arg(cfg.max_request_bytes.to_string())
            .arg("--auto-compaction-mode").arg(&cfg.auto_compaction_mode)
            .arg("--auto-compaction-retention").arg(&cfg.auto_compaction_retention)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fail(format!("cannot run `{}` (install the Debian package etcd-server, or set etcd-binary)", cfg.binary), e)
            })?;
        Ok(Self {
            child,
            log,
            client_urls: cfg
                .client_urls
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        })
    }

    /// Where clients connect.
    pub fn client_urls(&self) -> &[String] {
        &self.client_urls
    }

    /// The child's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The child's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` when the child has exited.
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the child's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the child (SIGKILL; etcd's WAL makes that safe) and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
