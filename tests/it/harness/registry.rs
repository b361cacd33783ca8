//! Where servers live on disk, and how servers that are never dropped still get cleaned up.
//!
//! Every server (private or shared) gets a directory
//! `<os temp>/dm-rs-it/<owner pid>-<owner start time>/<kind>-XXXXXX/` holding its data, its log
//! and `server.pid`. The owner is the test process. A dropped server is killed, reaped and its
//! directory removed (`process::ServerProcess`). The shared servers live in statics, which are
//! never dropped, so two mechanisms clean up after the test process:
//!
//! 1. **Watchdog.** On first use the harness spawns a tiny `sh` whose stdin is a pipe; the test
//!    process holds the only write end (close-on-exec, so no server inherits it). When the test
//!    process ends, however it ends (normal exit, panic, SIGKILL), the kernel closes that end,
//!    the watchdog's `read` returns, and it SIGKILLs every server recorded in the owner
//!    directory and removes the directory. It ignores SIGINT and SIGHUP, so a Ctrl-C on
//!    `cargo test` still cleans up.
//! 2. **Sweep.** If the watchdog was killed too, the next harness initialisation (of any test
//!    process) finds owner directories whose owner is gone (pid not running, or running with
//!    another start time, i.e. a reused pid) and does the same.
//!
//! A recorded pid is only killed while `/proc/<pid>/cmdline` names `mariadbd` or `etcd` and
//! contains the owner directory's path, i.e. it is still a server this harness started.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use super::process::proc_start_time;

/// File in each server directory holding the server's pid.
const PID_FILE: &str = "server.pid";

/// Kills the recorded servers of owner directory `$1` once stdin reaches EOF, then removes `$1`.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP
read -r _
for f in "$1"/*/server.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  case "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)" in
    *mariadbd*"$1"*|*etcd*"$1"*) kill -9 "$p" 2>/dev/null ;;
  esac
done
rm -rf "$1"
"#;

/// This test process's owner directory and its watchdog, which waits as long as the test
/// process holds the watchdog's stdin.
struct Owner {
    dir: PathBuf,
    _watchdog: Child,
}

fn owner() -> &'static Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    OWNER.get_or_init(|| {
        let base = std::env::temp_dir().join("dm-rs-it");
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        sweep_stale_owners(&base);
        let pid = std::process::id();
        let start_time = proc_start_time(pid).expect("read /proc/self/stat");
        let dir = base.join(format!("{pid}-{start_time}"));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("dm-rs-it-watchdog")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cleanup watchdog `sh`");
        Owner {
            dir,
            _watchdog: watchdog,
        }
    })
}

/// A new empty directory for one server of `kind` (`mariadb`, `etcd`), removed when dropped.
pub fn new_server_dir(kind: &str) -> TempDir {
    let owner_dir = &owner().dir;
    tempfile::Builder::new()
        .prefix(&format!("{kind}-"))
        .tempdir_in(owner_dir)
        .unwrap_or_else(|e| panic!("create a {kind} dir in {}: {e}", owner_dir.display()))
}

/// Records the pid of the server living in `server_dir`, for the watchdog and the sweep.
pub fn record_pid(server_dir: &Path, pid: u32) {
    let file = server_dir.join(PID_FILE);
    fs::write(&file, pid.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
}

/// Kills the servers and removes the directories of owners that are no longer running.
fn sweep_stale_owners(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start_time)) = name.to_str().and_then(|n| n.split_once('-')) else {
            continue;
        };
        let (Ok(pid), Ok(start_time)) = (pid.parse::<u32>(), start_time.parse::<u64>()) else {
            continue;
        };
        if proc_start_time(pid) == Some(start_time) {
            continue;
        }
        let owner_dir = entry.path();
        kill_recorded_servers(&owner_dir);
        match fs::remove_dir_all(&owner_dir) {
            Ok(()) => {}
            // Another test process swept it first.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => eprintln!("removing stale {}: {e}", owner_dir.display()),
        }
    }
}

fn kill_recorded_servers(owner_dir: &Path) {
    let Ok(servers) = fs::read_dir(owner_dir) else {
        return;
    };
    for server in servers.flatten() {
        let pid = fs::read_to_string(server.path().join(PID_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|&pid| is_our_server(pid, owner_dir)) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether `pid` is a `mariadbd` or `etcd` whose command line mentions `owner_dir`.
fn is_our_server(pid: u32, owner_dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let program = cmdline.split(' ').next().unwrap_or_default();
    let program = Path::new(program).file_name().and_then(|n| n.to_str());
    matches!(program, Some("mariadbd" | "etcd"))
        && cmdline.contains(owner_dir.to_string_lossy().as_ref())
}
