//! `conclaved`: one node of a Conclave cluster. Everything lives in the library; see
//! [`conclaved::main_with_args`].

fn main() -> std::process::ExitCode {
    conclaved::main_with_args(std::env::args_os())
}
