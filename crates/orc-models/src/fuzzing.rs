//! Entry points of the fuzz targets (`fuzz/` in the repository), compiled only with the
//! `fuzzing` feature: the providers' stream parsers over a body held in memory.

use crate::error::{CallSite, Error, FailureKind, Result};
use crate::provider;
use crate::provider_kind::ProviderKind;
use crate::request::ChatResponse;
use crate::secret::ApiKey;
use crate::stream::Reader;

/// Reads a streamed chat answer of a `provider` model whose body arrives as `chunks` (cut
/// wherever they end) the way a [`crate::ChatStream`] reads one: the SSE framing, the
/// provider's events and the stream's end. Gives the assembled answer, or the error the
/// stream ends with (messages with `key` masked).
pub fn read_stream<'a>(
    provider: ProviderKind,
    key: &ApiKey,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<ChatResponse> {
    let site = CallSite {
        provider,
        model: "fuzz-model".to_owned(),
        status: Some(200),
    };
    let fail = |kind, message: String| Error::call(site.clone(), kind, key.redact(&message), None);
    let mut reader = Reader::new(provider::stream_events(provider));
    let mut text = String::new();
    let mut drain = |reader: &mut Reader| -> Result<()> {
        while let Some(delta) = reader.next_delta() {
            text.push_str(&delta.map_err(|(kind, message)| fail(kind, message))?);
        }
        Ok(())
    };
    for chunk in chunks {
        reader.push(chunk);
        drain(&mut reader)?;
    }
    reader.finish();
    drain(&mut reader)?;
    if !reader.state.done {
        return Err(fail(
            FailureKind::Truncated,
            format!(
                "the stream ended before {}, after {} bytes of text",
                reader.terminator(),
                text.len()
            ),
        ));
    }
    let state = reader.state;
    Ok(ChatResponse {
        text,
        model: state.model.unwrap_or_else(|| site.model.clone()),
        usage: state.usage,
        finish_reason: state.finish_reason,
    })
}
