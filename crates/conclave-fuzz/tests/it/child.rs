//! Running one test of this binary in a child process.
//!
//! Two kinds of test need it: the config target, whose loader reads every `CONCLAVE_*`
//! variable (so it must run where none is set), and the tests of bugs that abort the process
//! (a stack overflow cannot be caught), which must not take the other tests down with them.

use std::process::{Command, Output};

/// Set in a child's environment; tests meant only for a child return at once without it.
pub const CHILD_VAR: &str = "FUZZ_CHILD";

/// Whether this process is a child started by [`run`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Runs the ignored test `name` (its full path, e.g. `fuzz::config_child`) of this test binary
/// in a child process with no `CONCLAVE_*` variables and `env` added.
pub fn run(name: &str, env: &[(&str, String)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut command = Command::new(exe);
    command.args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONCLAVE_") {
            command.env_remove(key);
        }
    }
    command.env(CHILD_VAR, "1");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().expect("the test binary runs as a child")
}

/// The child's output, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
