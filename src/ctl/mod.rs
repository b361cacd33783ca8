//! dmctl, the command-line client of dm-master: DM's command names and flags, one HTTP request
//! per command to the master's gateway (`/apis/v1alpha1/`, shapes in `crate::messages::rpc`), the
//! answer printed as received (pretty JSON, 2-space indent, the master's key order).
//!
//! - [`args`]: the clap command line (DM's global flags, commands, short flags, defaults).
//! - [`client`]: the master list tried in order, skipping masters that refuse connections.
//! - [`commands`]: command → request → [`commands::Outcome`].
//! - [`output`]: re-indenting and the summaries DM's dmctl computes itself.
//!
//! Exit status: 0 when the answer's `result` is true, 1 when it is false or no master answered
//! (`CTL_CONNECT_MASTER`), 2 for bad arguments (`CTL_INVALID_ARGS`) or unreadable files. Errors
//! go to stderr as DM-style text; answers go to stdout.

pub mod args;
pub mod client;
pub mod commands;
pub mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::error::{DmError, codes};

/// Parses `argv` (the program name first), runs the command, prints, and returns the exit
/// status.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match args::Cli::try_parse_from(args::normalize_go_flags(argv)) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let (first, rest) = rendered.split_once('\n').unwrap_or((&rendered, ""));
            let mut err = DmError::new(
                &codes::CTL_INVALID_ARGS,
                first.trim_start_matches("error: ").to_string(),
            );
            if !rest.trim().is_empty() {
                err = err.with_cause_text(rest.trim().to_string());
            }
            return fail(&err);
        }
    };
    match commands::run(cli) {
        Ok(out) => {
            println!("{}", out.stdout);
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e),
    }
}

/// Prints `err` as DM text on stderr and maps it to 2 (usage, configuration) or 1.
fn fail(err: &DmError) -> ExitCode {
    eprintln!("{}", err.report());
    let usage = err.code == codes::CTL_INVALID_ARGS.code || err.exit_code() == 2;
    ExitCode::from(if usage { 2 } else { 1 })
}
