//! `conclaved`: one node of a Conclave cluster. Everything lives in the library; see
//! [`conclaved::main_with_args`].

/// jemalloc rather than glibc's allocator, whose free-list upkeep was a fifth of a loaded node's
/// CPU; mimalloc was as fast but held more memory than etcd (docs/benchmarks.md).
/// `conclave-lab`, which also runs nodes, uses the same.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    conclaved::main_with_args(std::env::args_os())
}
