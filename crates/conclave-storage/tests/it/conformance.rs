//! The conformance suite, run against every store and option set we ship.

mod mem {
    conclave_storage::conformance_tests!(crate::support::MemHarness);
}

mod file_small_segments {
    conclave_storage::conformance_tests!(crate::support::FileHarness::new(
        crate::support::small_options()
    ));
}

mod file_default_options {
    conclave_storage::conformance_tests!(crate::support::FileHarness::new(
        conclave_storage::FileStoreOptions::default()
    ));
}

#[test]
fn run_all_covers_every_case() {
    let cases = conclave_storage::conformance::cases::<crate::support::MemHarness>();
    assert_eq!(cases.len(), 15, "the macro and cases() must list the same cases");
    conclave_storage::conformance::run_all(&mut crate::support::MemHarness);
}
