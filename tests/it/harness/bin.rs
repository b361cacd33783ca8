//! The project's own binaries run as child processes: killed and reaped on drop, their
//! output kept in a log file that is printed when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::process::tail_file;

/// `target/*/dm-master`.
pub const DM_MASTER: &str = env!("CARGO_BIN_EXE_dm-master");
/// `target/*/dm-worker`.
pub const DM_WORKER: &str = env!("CARGO_BIN_EXE_dm-worker");
/// `target/*/dm-migrate`.
pub const DM_MIGRATE: &str = env!("CARGO_BIN_EXE_dm-migrate");
/// `target/*/dm-syncer`.
pub const DM_SYNCER: &str = env!("CARGO_BIN_EXE_dm-syncer");
/// `target/*/dmctl`.
pub const DMCTL: &str = env!("CARGO_BIN_EXE_dmctl");

/// A running binary.
pub struct BinProcess {
    child: Child,
    log: PathBuf,
}

impl BinProcess {
    /// Starts `bin` with `args`, stdout and stderr appended to `log`.
    pub fn spawn(bin: &str, args: &[String], log: PathBuf) -> Self {
        Self::spawn_with_env(bin, args, &[], log)
    }

    /// As [`Self::spawn`], with extra environment variables (e.g. `DM_RS_FAILPOINTS`).
    pub fn spawn_with_env(bin: &str, args: &[String], env: &[(&str, &str)], log: PathBuf) -> Self {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("clone log handle"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        self.child.wait().expect("wait for the child")
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }
}

impl Drop for BinProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log_tail(80));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
