//! The etcd member a dm-master runs as a child process (DM embeds etcd; we run the real
//! `etcd` binary so three masters form a real etcd cluster). The child's output goes to
//! `<data-dir>/etcd.log`; dropping the handle kills it, and on Linux the kernel kills it
//! (`PR_SET_PDEATHSIG`) when dm-master dies in any way, `kill -9` included.
//!
//! Start-up ([`EtcdMember::start`]) waits until the member answers or exits; an exit is a
//! coded error naming the cause read from the member's log ([`classify_exit`]: a port in
//! use, a peer configuration that does not match the cluster, ...). The data directory is
//! locked by dm-master itself ([`DataDirLock`]) before etcd starts, because etcd waits
//! silently for a data directory another process holds.
//!
//! Supervision after start-up (restart with backoff, give up) is the master's
//! `EtcdMemberActor`; this module holds only the process handling and the classification.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{DmError, codes};

/// How to start the member.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub binary: String,
    pub name: String,
    pub data_dir: PathBuf,
    /// Client URLs the member listens on (comma-separated).
    pub listen_client_urls: String,
    /// Client URLs the member advertises to the cluster (comma-separated): what
    /// `member list` shows and what workers are told to use.
    pub advertise_client_urls: String,
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

impl MemberConfig {
    /// The member of dm-master `cfg`, listening for clients on `listen_client_urls` and
    /// advertising `advertise_client_urls`.
    pub fn for_master(
        cfg: &crate::config::MasterConfig,
        listen_client_urls: String,
        advertise_client_urls: String,
    ) -> Self {
        Self {
            binary: cfg.etcd_binary.clone(),
            name: cfg.name.clone(),
            data_dir: PathBuf::from(&cfg.data_dir),
            listen_client_urls,
            advertise_client_urls,
            peer_urls: cfg.peer_urls.clone(),
            advertise_peer_urls: cfg.advertise_peer_urls.clone(),
            initial_cluster: cfg.initial_cluster.clone(),
            initial_cluster_state: cfg.initial_cluster_state.clone(),
            quota_backend_bytes: cfg.quota_backend_bytes,
            max_txn_ops: cfg.max_txn_ops,
            max_request_bytes: cfg.max_request_bytes,
            auto_compaction_mode: cfg.auto_compaction_mode.clone(),
            auto_compaction_retention: cfg.auto_compaction_retention.clone(),
        }
    }
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

/// Why a member exited, read from its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// A client or peer port is taken by another process.
    PortInUse,
    /// The member's name, peer URLs or data do not match the cluster it is told to form or
    /// join.
    PeerMismatch,
    /// The data directory is unusable (permissions, corruption, disk full).
    DataDir,
    /// Anything else; the log line says what.
    Other,
}

impl ExitCause {
    /// The short name used in messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitCause::PortInUse => "port in use",
            ExitCause::PeerMismatch => "peer configuration mismatch",
            ExitCause::DataDir => "data-dir unusable",
            ExitCause::Other => "etcd exited",
        }
    }
}

/// Classifies a member's exit from its log: etcd logs the fatal reason as a critical
/// (` C | `) or fatal line just before it exits. Returns the cause and that line.
pub fn classify_exit(log_tail: &str) -> (ExitCause, String) {
    let line = log_tail
        .lines()
        .rev()
        .find(|l| l.contains(" C | ") || l.contains("\"level\":\"fatal\"") || l.contains(" F | "))
        .or_else(|| log_tail.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .to_string();
    let has = |s: &str| line.contains(s);
    let cause = if has("address already in use") {
        ExitCause::PortInUse
    } else if has("couldn't find local name")
        || has("mismatch")
        || has("member count is unequal")
        || has("has already been bootstrapped")
        || has("error validating peerURLs")
        || has("does not match")
        || has("member has already been removed")
    {
        ExitCause::PeerMismatch
    } else if has("permission denied")
        || has("no space left")
        || has("cannot access data directory")
        || has("wal:")
        || has("snap:")
    {
        ExitCause::DataDir
    } else {
        ExitCause::Other
    };
    (cause, line)
}

/// An exclusive lock on a dm-master data directory (`<data-dir>/dm-master.lock`, `flock`),
/// held for the life of the process: a second dm-master on the same directory fails at once
/// with a coded error instead of running an etcd member that waits for the first one.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it; `MASTER_START_EMBED_ETCD` naming the holder's pid
    /// when another process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, DmError> {
        let fail = |what: String, e: std::io::Error| {
            DmError::new(&codes::MASTER_START_EMBED_ETCD, what).with_cause(e)
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create data-dir `{}`", dir.display()), e))?;
        let path = dir.join("dm-master.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| fail(format!("cannot open `{}`", path.display()), e))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(DmError::new(
                &codes::MASTER_START_EMBED_ETCD,
                format!(
                    "data-dir unusable: `{}` is locked by another dm-master (pid {}); give each \
                     dm-master its own data-dir",
                    dir.display(),
                    holder.trim()
                ),
            ));
        }
        use std::io::Write;
        file.set_len(0).ok();
        let _ = write!(file, "{}", std::process::id());
        Ok(Self { _file: file })
    }
}

/// A running etcd child.
pub struct EtcdMember {
    child: Child,
    log: PathBuf,
    client_urls: Vec<String>,
}

impl EtcdMember {
    /// Starts the child without waiting; it is ready once [`super::connect`] to
    /// [`Self::client_urls`] succeeds. [`EtcdMember::start`] also waits.
    pub fn spawn(cfg: &MemberConfig) -> Result<Self, DmError> {
        let fail = |what: String, e: std::io::Error| {
            DmError::new(&codes::MASTER_START_EMBED_ETCD, what).with_cause(e)
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
            .arg("--listen-client-urls").arg(&cfg.listen_client_urls)
            .arg("--advertise-client-urls").arg(&cfg.advertise_client_urls)
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
                .listen_client_urls
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }

    /// Starts the child and waits until it answers on its client URLs (`deadline`). A child
    /// that exits first is `MASTER_START_EMBED_ETCD` naming the cause ([`classify_exit`]) and
    /// the log line; one that neither answers nor exits in time is killed and reported the
    /// same way with the log's tail.
    pub async fn start(
        cfg: &MemberConfig,
        deadline: Duration,
    ) -> Result<(Self, etcd_client::Client), DmError> {
        let mut member = Self::spawn(cfg)?;
        let urls = member.client_urls.clone();
        let outcome = {
            let connect = super::connect(&urls, deadline);
            tokio::pin!(connect);
            tokio::select! {
                res = &mut connect => Ok(res),
                status = member.child.wait() => Err(status),
            }
        };
        match outcome {
            Ok(Ok(client)) => Ok((member, client)),
            Ok(Err(e)) => {
                let tail = member.log_tail(20);
                member.stop().await;
                Err(DmError::new(
                    &codes::MASTER_START_EMBED_ETCD,
                    format!(
                        "etcd member `{}` did not answer on {} within {deadline:?}",
                        cfg.name,
                        urls.join(",")
                    ),
                )
                .with_cause(e)
                .with_cause_text(format!("etcd log tail:\n{tail}")))
            }
            Err(status) => Err(member.exit_error(&cfg.name, status.ok())),
        }
    }

    /// The coded error for a member that exited with `status`: the cause and the log line.
    pub fn exit_error(&self, name: &str, status: Option<std::process::ExitStatus>) -> DmError {
        let (cause, line) = classify_exit(&self.log_tail(30));
        let status = status.map_or("unknown status".to_string(), |s| s.to_string());
        DmError::new(
            &codes::MASTER_START_EMBED_ETCD,
            format!(
                "{}: etcd member `{name}` exited ({status}): {line} (log: {})",
                cause.as_str(),
                self.log.display()
            ),
        )
    }

    /// Where clients connect (the listen client URLs).
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

    /// Waits until the child exits.
    pub async fn wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.wait().await.ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_causes_are_read_from_etcds_fatal_line() {
        let port = "2026-12-07 20:52:30.267884 I | etcdmain: setting maximum number of CPUs to 2\n\
                    2026-12-07 20:52:30.268684 C | etcdmain: listen tcp 127.0.0.1:23790: bind: address already in use\n";
        let (c, line) = classify_exit(port);
        assert_eq!(c, ExitCause::PortInUse);
        assert!(line.ends_with("bind: address already in use"), "{line}");
        let name = "x I | embed: advertise client URLs = http://127.0.0.1:23791\n\
                    x C | etcdmain: couldn't find local name \"b\" in the initial cluster configuration\n";
        assert_eq!(classify_exit(name).0, ExitCause::PeerMismatch);
        let other = "x I | something\nx C | etcdmain: unexpected thing\n";
        let (c, line) = classify_exit(other);
        assert_eq!(c, ExitCause::Other);
        assert!(line.contains("unexpected thing"));
        assert_eq!(classify_exit("").0, ExitCause::Other);
    }

    #[test]
    fn a_data_dir_is_locked_by_one_master_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        let err = DataDirLock::acquire(dir.path()).expect_err("second lock fails");
        assert_eq!(err.code, codes::MASTER_START_EMBED_ETCD.code);
        assert!(
            err.message.contains("locked by another dm-master"),
            "{}",
            err.message
        );
        assert!(err.message.contains(&std::process::id().to_string()));
        drop(first);
        DataDirLock::acquire(dir.path()).expect("lock again after release");
    }
}
