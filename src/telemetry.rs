//! Logging set-up shared by the binaries: `tracing` to stderr or a file, text or JSON, with
//! the level from the config (`RUST_LOG` overrides it), and a panic hook that logs the panic
//! before the process aborts.

use std::fs::OpenOptions;
use std::path::Path;

use tracing_subscriber::EnvFilter;

use crate::error::{DmError, codes};

/// Installs the global subscriber. `level` is DM's (`debug`, `info`, `warn`, `error`,
/// `fatal`); `file` empty means stderr; `format` is `text` or `json`.
pub fn init(level: &str, file: &str, format: &str) -> Result<(), DmError> {
    let level = match level.to_ascii_lowercase().as_str() {
        "fatal" => "error".to_string(),
        other => other.to_string(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},h2=warn,tower=warn,hyper=warn,tonic=warn,mysql_async=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if file.is_empty() {
        use std::io::IsTerminal;
        let b = builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        if format == "json" {
            b.json().try_init()
        } else {
            b.try_init()
        }
    } else {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(file))
            .map_err(|e| {
                DmError::new(
                    &codes::CONFIG_INVALID_VALUE,
                    format!("cannot open log-file `{file}`"),
                )
                .with_cause(e)
            })?;
        let b = builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f));
        if format == "json" {
            b.json().try_init()
        } else {
            b.try_init()
        }
    };
    // A second init (tests start several servers in one process) keeps the first subscriber.
    let _ = result;
    install_panic_hook();
    Ok(())
}

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "panic: this is a bug; the process exits and resumes from checkpoints on restart");
        default(info);
    }));
}
