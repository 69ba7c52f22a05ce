//! The command line: the summary line, the replay command, exit codes.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_conclave-sim")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn passing_seeds_end_with_the_summary_line() {
    let (code, out) =
        sim(&["--protocol", "raft", "--seeds", "3", "--first-seed", "40", "--no-duplicates"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().last(), Some("3 passed, 0 failed"), "{out}");
}

#[test]
fn a_failed_seed_prints_its_replay_command_and_exits_1() {
    let (code, out) = sim(&[
        "--protocol",
        "raft",
        "--seed",
        "9",
        "--no-duplicates",
        "--plant",
        "read-from-deposed-leader",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED seed 9"), "{out}");
    let replay = "replay: cargo run --release -p conclave-sim -- --protocol raft --seed 9 \
                  --no-duplicates --plant read-from-deposed-leader";
    assert!(out.contains(replay), "{out}");
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed"), "{out}");
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(sim(&["--protocol", "zab"]).0, 2);
    assert_eq!(sim(&["--protocol", "raft", "--plant", "nonsense"]).0, 2);
    assert_eq!(sim(&["--protocol", "raft", "--clients", "0"]).0, 2);
}
