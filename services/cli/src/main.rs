//! `einfo`: runs provincial nodes and services, verifies logs offline, issues tokens, and starts
//! a local federation.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    einfo_cli::main()
}
