//! A server child process: its binary, its private directory and log file, readiness polling,
//! and `Drop` that kills it, reaps it and removes its directory.
//!
//! `mariadb` and `etcd` only say how to build the command line and how to probe readiness;
//! everything else about running a server lives here.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::eventually::{POLL_INTERVAL, try_eventually};
use super::registry;

/// Lines of log printed when something fails.
pub const LOG_TAIL_LINES: usize = 50;

/// Longest a single readiness probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Start-up attempts when the server lost a port race to another process.
const START_ATTEMPTS: usize = 3;

/// Finds `name` on `PATH`, then in `/usr/sbin` and `/usr/bin`; panics naming the Debian package
/// that provides it.
pub fn find_binary(name: &str, package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH nor in /usr/sbin or /usr/bin: the integration tests need \
                 the Debian package `{package}` (apt-get install {package}); run `scripts/setup.sh` \
                 as the README says"
            )
        })
}

/// Why a server did not become ready.
#[derive(Debug)]
pub struct StartError {
    /// What happened, with the tail of the server's log.
    pub message: String,
    /// The log says a port was taken: worth retrying on new ports.
    pub port_clash: bool,
}

/// Runs `attempt` until it succeeds, retrying only when a port was taken meanwhile by another
/// process; panics with the last failure.
pub fn start_with_retry<T>(what: &str, mut attempt: impl FnMut() -> Result<T, StartError>) -> T {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt() {
            Ok(started) => return started,
            Err(e) if e.port_clash && tries < START_ATTEMPTS => {
                eprintln!("{what}: port taken, retrying on new ports ({tries}/{START_ATTEMPTS})");
            }
            Err(e) => panic!("{what} failed to start: {}", e.message),
        }
    }
}

/// A running server we spawned, owning its directory.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    child: Child,
    dir: Option<TempDir>,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with stdin closed and stdout/stderr appended to `log`, and records its
    /// pid in `dir` (see `registry`).
    pub fn spawn(name: &'static str, mut command: Command, dir: TempDir, log: PathBuf) -> Self {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({command:?}): {e}"));
        registry::record_pid(dir.path(), child.id());
        Self {
            name,
            child,
            dir: Some(dir),
            log,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and reaps it; the directory stays for [`Self::respawn`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts `command` again in the same directory, appending to the same log.
    pub fn respawn(&mut self, mut command: Command) {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let err = out.try_clone().expect("clone log file handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        self.child = command
            .spawn()
            .unwrap_or_else(|e| panic!("respawn {} ({command:?}): {e}", self.name));
        registry::record_pid(self.dir(), self.child.id());
    }

    /// The server's private directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is only taken in drop").path()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// Polls `probe` every [`POLL_INTERVAL`] until it succeeds; fails if the process exits or
    /// `timeout` passes first.
    pub async fn wait_ready<F, Fut>(
        &self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), StartError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut last_error = String::new();
        let outcome = try_eventually(timeout, POLL_INTERVAL, async || {
            if !pid_running(self.pid()) {
                return Some(Err(self.start_error("exited during start-up")));
            }
            match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => return Some(Ok(())),
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = format!("probe took longer than {PROBE_TIMEOUT:?}"),
            }
            None
        })
        .await;
        outcome.unwrap_or_else(|| {
            let reason = format!("not ready after {timeout:?}; last probe error: {last_error}");
            Err(self.start_error(&reason))
        })
    }

    fn start_error(&self, reason: &str) -> StartError {
        let tail = self.log_tail(LOG_TAIL_LINES);
        StartError {
            port_clash: tail.to_ascii_lowercase().contains("address already in use"),
            message: format!(
                "{} (pid {}, dir {}) {reason}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{tail}",
                self.name,
                self.pid(),
                self.dir().display(),
                self.log.display()
            ),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) last {LOG_TAIL_LINES} lines of {} ---\n{}",
                self.name,
                self.pid(),
                self.log.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // SIGKILL; fails only if the process was already reaped.
        let _ = self.child.kill();
        if let Err(e) = self.child.wait() {
            eprintln!("reaping {} (pid {}): {e}", self.name, self.pid());
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("removing {}: {e}", path.display());
            }
        }
    }
}

/// The state letter and start time (clock ticks after boot) of `pid`, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields start after the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// SIGKILL to `pid` — only ever a process the test started (or a child of one).
pub fn kill9(pid: u32) {
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Whether `pid` is a live process (exists and is neither a zombie nor dead).
pub fn pid_running(pid: u32) -> bool {
    proc_start_time(pid).is_some()
}

/// The start time of `pid` if it is running; with the pid it identifies a process across pid
/// reuse.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid)
        .filter(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
        .map(|(_, start_time)| start_time)
}

/// The last `lines` lines of the file at `path` (or a note that it cannot be read).
pub fn tail_file(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Runs the future made by `make` to completion on a new thread with its own current-thread
/// runtime, so blocking harness code works inside and outside a tokio runtime alike. A panic in
/// the future is propagated to the caller.
pub fn run_blocking<T, F, Fut>(make: F) -> T
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build a current-thread tokio runtime")
                    .block_on(make())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
