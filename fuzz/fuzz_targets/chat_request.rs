//! Any bytes as the body of `POST /v1/chat/completions` (orc serve's OpenAI-compatible
//! gateway), read into orc's chat request as the route reads it. A body is taken or refused
//! with a 4xx naming the problem, never a panic or a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(status) = orc_server::fuzzing::chat_request(body) {
        assert!(
            (400..500).contains(&status),
            "a body answered with {status}"
        );
    }
});
