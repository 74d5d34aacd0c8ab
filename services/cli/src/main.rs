//! `einfo`: runs provincial nodes and services, verifies logs offline, issues tokens, and starts
//! a local federation.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    einfo_cli::main_exit()
}
