//! The Conclave server as a library: `conclaved`'s main, and the pieces tests and the lab reuse.
//!
//! [`main_with_args`] parses flags, loads and validates the configuration (exit code 2 on a bad
//! one, before anything is bound), then runs the node until SIGTERM or SIGINT — or, with the
//! `snapshot` command, restores or checks a backup instead ([`restore`]).

pub mod address;
pub mod cli;
pub mod config;
pub mod http;
pub mod limits;
pub mod protocols;
pub mod restore;
pub mod server;
pub mod tls;

use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the server with these command-line arguments (the first is the program name).
pub fn main_with_args(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let flags = match cli::Flags::try_parse_from(args) {
        Ok(flags) => flags,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    if let Some(cli::Command::Snapshot(cli::SnapshotCommand::Status { file })) = &flags.command {
        return restore::run_status(file);
    }
    let config = match config::Config::load(flags.config.as_deref(), &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("conclaved: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(cli::Command::Snapshot(cli::SnapshotCommand::Restore { file })) = &flags.command {
        return restore::run_restore(&config, file);
    }
    if flags.check_config {
        match toml_like(&config) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("conclaved: {error}"),
        }
        return ExitCode::SUCCESS;
    }
    init_tracing(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conclaved: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config, server::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("conclaved: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn toml_like(config: &config::Config) -> Result<String, toml::ser::Error> {
    toml::to_string_pretty(config)
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
