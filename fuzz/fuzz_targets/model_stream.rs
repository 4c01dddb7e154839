//! Any bytes as the body of a provider's streamed chat answer, read the way orc reads one:
//! SSE framing, the provider's events, the end of the stream. The first byte picks the
//! protocol (lowest bit: 0 OpenAI-compatible, 1 Anthropic) and where the body is cut into
//! chunks (the other bits: a chunk length, 0 for one chunk); the rest is the body. Reading
//! must give an answer or an error, never panic, and no error may show the API key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orc_models::{ApiKey, ProviderKind};

const KEY: &str = "sk-fuzz-0123456789";

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let provider = if control & 1 == 0 {
        ProviderKind::OpenAi
    } else {
        ProviderKind::Anthropic
    };
    let stride = usize::from(control >> 1).max(1);
    let chunks: Vec<&[u8]> = if control >> 1 == 0 {
        vec![body]
    } else {
        body.chunks(stride).collect()
    };
    let key = ApiKey::new(KEY);
    match orc_models::fuzzing::read_stream(provider, &key, chunks) {
        Ok(answer) => {
            let _ = serde_json::to_string(&answer);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains(KEY), "the key in an error: {message}");
        }
    }
});
