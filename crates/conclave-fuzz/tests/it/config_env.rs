//! The config loader reads every `CONCLAVE_*` variable as configuration and refuses unknown
//! keys, so an unrelated variable with that prefix (a harness's, like `CONCLAVE_FUZZ_SECONDS`)
//! stops conclaved with exit code 2. Pinned here because it is why the config fuzz target
//! runs in a clean child process; docs/security.md notes it for operators.

use crate::child;
use conclave_fuzz::runner::Verdict;
use conclave_fuzz::targets::config;

#[test]
fn an_unknown_conclave_variable_stops_the_loader() {
    let output =
        child::run("config_env::load_with_a_stray_variable", &[("CONCLAVE_NOT_A_KEY", "1".into())]);
    assert!(output.status.success(), "{}", child::describe(&output));
}

#[test]
#[ignore = "run by an_unknown_conclave_variable_stops_the_loader in a child process"]
fn load_with_a_stray_variable() {
    if !child::is_child() {
        return;
    }
    let seed = &conclave_fuzz::corpus::load(config::TARGET)[0];
    let dir = tempfile::tempdir().unwrap();
    // A config that loads in a clean environment is refused, naming the stray key.
    assert_eq!(config::check(dir.path(), &seed.bytes), Ok(Verdict::Rejected));
    let path = dir.path().join("conclave.toml");
    let flags = <conclaved::cli::Flags as clap::Parser>::try_parse_from(["conclaved"]).unwrap();
    let error = conclaved::config::Config::load(Some(&path), &flags).unwrap_err().to_string();
    assert!(error.contains("not_a_key"), "{error}");
}
