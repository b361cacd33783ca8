//! dmctl: the command-line client of dm-master, with DM's command names and flags (see
//! `dm::ctl`).
//!
//! Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.

use std::process::ExitCode;

fn main() -> ExitCode {
    dm::ctl::main(std::env::args_os())
}
