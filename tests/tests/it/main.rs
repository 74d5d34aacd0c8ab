//! einfo's integration tests, as one binary: real servers on port 0, both databases, the `einfo`
//! command as a child process, faults caused by breaking real things. Each module was a test
//! file; `einfo_testkit::harness` lists every test, so a PostgreSQL test that cannot run here is
//! reported as skipped, not passed.
//!
//! The binary is also the `einfo` command for the tests that run it as a child process: started
//! with `EINFO_TEST_RUN_AS_CLI` set, it runs `einfo_cli::main` instead of the tests.

mod accounts;
mod backup;
mod bad_input;
mod bad_input_services;
mod central;
mod changelog;
mod checkpoints;
mod cli;
mod crash;
mod decisions;
mod desk;
mod docs;
mod faults;
mod fixtures;
mod fuzz_requests;
mod gateway;
mod gateway_campaigns;
mod gateway_checkpoints;
mod gateway_crash;
mod gateway_entries;
mod gateway_federation;
mod gateway_integrity;
mod gateway_restart;
mod idempotency;
mod import;
mod inspection;
mod licences;
mod limits;
mod node;
mod privacy;
mod recover;
mod reference;
mod refusals;
mod report_document;
mod reporting;
mod roles;
mod sanctions;
mod server;
mod sites;
mod statistics;
mod telemetry;
mod tls;

fn main() -> std::process::ExitCode {
    if std::env::var_os(einfo_testkit::process::RUN_AS_CLI).is_some() {
        return einfo_cli::main_exit();
    }
    let mut trials = Vec::new();
    trials.extend(accounts::trials());
    trials.extend(backup::trials());
    trials.extend(bad_input::trials());
    trials.extend(bad_input_services::trials());
    trials.extend(central::trials());
    trials.extend(changelog::trials());
    trials.extend(checkpoints::trials());
    trials.extend(cli::trials());
    trials.extend(crash::trials());
    trials.extend(decisions::trials());
    trials.extend(desk::trials());
    trials.extend(docs::trials());
    trials.extend(faults::trials());
    trials.extend(fixtures::trials());
    trials.extend(fuzz_requests::trials());
    trials.extend(gateway::trials());
    trials.extend(gateway_campaigns::trials());
    trials.extend(gateway_checkpoints::trials());
    trials.extend(gateway_crash::trials());
    trials.extend(gateway_entries::trials());
    trials.extend(gateway_federation::trials());
    trials.extend(gateway_integrity::trials());
    trials.extend(gateway_restart::trials());
    trials.extend(idempotency::trials());
    trials.extend(import::trials());
    trials.extend(inspection::trials());
    trials.extend(licences::trials());
    trials.extend(limits::trials());
    trials.extend(node::trials());
    trials.extend(recover::trials());
    trials.extend(privacy::trials());
    trials.extend(reference::trials());
    trials.extend(report_document::trials());
    trials.extend(reporting::trials());
    trials.extend(roles::trials());
    trials.extend(sanctions::trials());
    trials.extend(server::trials());
    trials.extend(sites::trials());
    trials.extend(statistics::trials());
    trials.extend(telemetry::trials());
    trials.extend(tls::trials());
    einfo_testkit::harness::run(trials)
}
