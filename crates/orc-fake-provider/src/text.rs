//! Pure text helpers: the fake tokenizer (whitespace-separated words), answer
//! truncation, stream chunking, deterministic hashes and embeddings.

use serde_json::Value;

/// Tokens as the fake counts them: whitespace-separated words.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The first `max` words of `text` (with the text between them), and whether
/// anything was cut.
pub(crate) fn first_words(text: &str, max: usize) -> (&str, bool) {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if !space && !in_word {
            if seen == max {
                return (text[..i].trim_end(), true);
            }
            seen += 1;
        }
        in_word = !space;
    }
    (text, false)
}

/// Splits `text` into stream deltas, one word each with the whitespace before
/// it, so that the deltas concatenate back to `text`.
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space && i > start {
            out.push(&text[start..i]);
            start = i;
        }
        prev_space = space;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// 64-bit FNV-1a: stable across processes and platforms, unlike `DefaultHasher`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A unit-length vector of `dims` floats derived from a hash of `text`: the same
/// text always gives the same vector.
pub(crate) fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            let x = splitmix64(&mut state) >> 40; // 24 random bits
            (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Standard base64 (with padding) of the little-endian bytes of `v`, as
/// OpenAI's `encoding_format: "base64"` returns it.
pub(crate) fn base64_f32(v: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A hash of `value` that ignores the order of object keys, so two requests
/// that differ only in key order count as the same request.
pub(crate) fn canonical_hash(prefix: &str, value: &Value) -> u64 {
    let mut text = String::from(prefix);
    text.push('\n');
    text.push_str(&sorted(value).to_string());
    fnv1a(text.as_bytes())
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::with_capacity(map.len());
            for key in keys {
                if let Some(v) = map.get(key) {
                    out.insert(key.clone(), sorted(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_truncates_words() {
        assert_eq!(words("  echo: hello   world \n"), 3);
        assert_eq!(first_words("echo: hello world", 2), ("echo: hello", true));
        assert_eq!(
            first_words("echo: hello world", 3),
            ("echo: hello world", false)
        );
        assert_eq!(first_words("echo: hello world", 0), ("", true));
        assert_eq!(first_words("", 0), ("", false));
    }

    #[test]
    fn pieces_concatenate_back() {
        for text in [
            "echo: hello world",
            "  lead",
            "trail  ",
            "",
            "one",
            "a\n\nb c",
        ] {
            let p = pieces(text);
            assert_eq!(p.concat(), text);
            assert!(p.iter().all(|piece| !piece.is_empty()));
        }
        assert_eq!(pieces("echo: hello world"), ["echo:", " hello", " world"]);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello", 8);
        assert_eq!(a, embedding("hello", 8));
        assert_ne!(a, embedding("hellp", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[0.0, 1.0]), "AAAAAAAAgD8=");
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"c":2,"d":3}}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"b":{"d":3,"c":2},"a":1}"#).unwrap_or_default();
        assert_eq!(canonical_hash("x", &a), canonical_hash("x", &b));
        assert_ne!(canonical_hash("x", &a), canonical_hash("y", &a));
    }
}
