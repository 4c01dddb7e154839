//! Any bytes as the body of `POST /v1/runs`: read, its run id and budget checked, its pipeline
//! compiled and its inputs checked against the pipeline's declarations, as a run is before it
//! is recorded. A body is taken or refused with a 4xx, never a panic or a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(status) = orc_server::fuzzing::run_request(body) {
        assert!(
            (400..500).contains(&status),
            "a body answered with {status}"
        );
    }
});
