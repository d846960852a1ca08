//! The `troupe` command's exit codes, shared by the command line and its subcommands.
//!
//! They follow `sysexits.h`: 0 success, 1 failure ([`std::process::ExitCode::SUCCESS`] and
//! [`std::process::ExitCode::FAILURE`]), and the two below.

/// A bad configuration or usage (`EX_USAGE`).
pub const CONFIG: u8 = 64;
/// A node could not be reached (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
