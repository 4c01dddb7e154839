//! A decoder of server-sent events (the framing of both providers' streams).

use std::collections::VecDeque;

/// One event: its `event:` name, if any, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// Turns body chunks, cut anywhere, into events.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    ready: VecDeque<SseEvent>,
}

impl SseDecoder {
    /// Feeds the next chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = self.buf[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buf[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line);
            start = end + 1;
        }
        self.buf.drain(..start);
    }

    /// Ends the body: a last line without its newline, and a last event without its
    /// blank line, still count.
    pub(crate) fn finish(&mut self) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line =
                String::from_utf8_lossy(rest.strip_suffix(b"\r").unwrap_or(&rest)).into_owned();
            self.line(&line);
        }
        self.dispatch();
    }

    /// The next complete event, if one is ready.
    pub(crate) fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {} // id, retry and unknown fields do not matter here
        }
    }

    fn dispatch(&mut self) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            self.ready.push_back(SseEvent { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                events.push(event);
            }
        }
        decoder.finish();
        while let Some(event) = decoder.next_event() {
            events.push(event);
        }
        events
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_split_anywhere() {
        let body = "event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let whole = decode(&[body.as_bytes()]);
        let expected = vec![
            event(Some("message_start"), "{\"a\":1}"),
            event(None, "x\ny"),
            event(None, "[DONE]"),
        ];
        assert_eq!(whole, expected);
        let bytes = body.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode(&one_by_one), expected);
    }

    #[test]
    fn crlf_and_unterminated_last_event() {
        assert_eq!(
            decode(&[b"data: a\r\n\r\ndata:b"]),
            vec![event(None, "a"), event(None, "b")]
        );
    }

    #[test]
    fn multibyte_text_split_across_chunks() {
        let body = "data: h\u{e9}llo \u{1f980}\n\n".as_bytes();
        for cut in 0..body.len() {
            assert_eq!(
                decode(&[&body[..cut], &body[cut..]]),
                vec![event(None, "h\u{e9}llo \u{1f980}")]
            );
        }
    }
}
