//! dmctl: the command-line client of dm-master, with DM's command names and flags.
//!
//! Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dm::config::SecretKey;
use dm::error::{DmError, codes};

/// DM control: manage sources, tasks and members of a dm-rs cluster.
#[derive(Debug, Parser)]
#[command(name = "dmctl", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Encrypt a password into DM's cipher text (AES-256-CFB, `base64(iv@data)`).
    Encrypt {
        /// The plain text.
        plaintext: String,
        /// File with the 64-hex-character key (the master's `secret-key-path`).
        #[arg(long, env = "DM_SECRET_KEY_PATH")]
        secret_key_path: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    dm::standalone::exit(run(Args::parse()).map(|out| println!("{out}")))
}

fn run(args: Args) -> Result<String, DmError> {
    match args.command {
        Command::Encrypt {
            plaintext,
            secret_key_path,
        } => {
            let path = secret_key_path.ok_or_else(|| {
                DmError::new(&codes::CONFIG_SECRET_KEY, "no secret key: pass --secret-key-path (the file the master's secret-key-path names)")
                    .with_workaround("Create one with `openssl rand -hex 32 > secret.key` and set `secret-key-path` in dm-master.toml to the same file.")
            })?;
            Ok(SecretKey::from_file(&path)?.encrypt(&plaintext))
        }
    }
}
