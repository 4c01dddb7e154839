//! How values are stored: one flag byte (`0` raw, `1` zstd) before the payload, in every backend,
//! so an entry written with compression on still reads back after it is turned off. File entries
//! add a header of their own (see [`FileHeader`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The payload follows as given.
const RAW: u8 = 0;
/// The payload is one zstd frame.
const ZSTD: u8 = 1;
/// zstd's level: fast, and most of the gain on text.
const LEVEL: i32 = 3;
/// Values (or compressed payloads) at least this long are compressed or decompressed on the
/// blocking pool instead of the async worker.
pub(crate) const INLINE_LIMIT: usize = 64 * 1024;

/// Why a stored value could not be decoded.
pub(crate) type DecodeError = String;

/// The stored form of `value`: the flag byte, then the value itself or, when `compress` is set and
/// it saves space, its zstd frame.
pub(crate) fn encode(value: &[u8], compress: bool) -> Vec<u8> {
    if compress {
        let mut out = Vec::with_capacity(1 + value.len() / 2);
        out.push(ZSTD);
        if zstd::stream::copy_encode(value, &mut out, LEVEL).is_ok() && out.len() < 1 + value.len()
        {
            return out;
        }
    }
    let mut out = Vec::with_capacity(1 + value.len());
    out.push(RAW);
    out.extend_from_slice(value);
    out
}

/// [`encode`], on the blocking pool when compressing a large value.
pub(crate) async fn encode_async(value: &[u8], compress: bool) -> Vec<u8> {
    if !compress || value.len() < INLINE_LIMIT {
        return encode(value, compress);
    }
    let owned = value.to_vec();
    match tokio::task::spawn_blocking(move || encode(&owned, true)).await {
        Ok(encoded) => encoded,
        // The blocking pool is shutting down: do the work here rather than lose the value.
        Err(_) => encode(value, compress),
    }
}

/// The value stored in `stored` (flag byte and payload). Raw values are a slice of `stored`, not a copy.
pub(crate) fn decode(stored: Bytes) -> Result<Bytes, DecodeError> {
    match stored.first() {
        Some(&RAW) => Ok(stored.slice(1..)),
        Some(&ZSTD) => zstd::stream::decode_all(&stored[1..])
            .map(Bytes::from)
            .map_err(|e| format!("zstd: {e}")),
        Some(flag) => Err(format!("unknown encoding {flag}")),
        None => Err("empty entry".to_owned()),
    }
}

/// [`decode`], on the blocking pool when decompressing a large payload.
pub(crate) async fn decode_async(stored: Bytes) -> Result<Bytes, DecodeError> {
    if stored.first() != Some(&ZSTD) || stored.len() < INLINE_LIMIT {
        return decode(stored);
    }
    tokio::task::spawn_blocking(move || decode(stored))
        .await
        .map_err(|e| format!("decompression did not finish: {e}"))?
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whole milliseconds of `d`, at least 1 (so a tiny TTL still expires rather than meaning "none").
pub(crate) fn ttl_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The header of a file entry: magic, expiry, length and checksum of the stored value, so that a
/// file cut short or overwritten with garbage reads as a miss and a TTL holds across processes.
///
/// Layout, little-endian: `ORC\x01` (4 bytes), expiry in Unix ms (8, 0 = never), stored length
/// (8), the first 8 bytes of the stored value's blake3 hash (8); the stored value follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// When the entry expires, in Unix ms; 0 = never.
    pub(crate) expires_ms: u64,
    /// Length of the stored value (flag byte and payload).
    pub(crate) len: u64,
    /// The first 8 bytes of the stored value's blake3 hash.
    pub(crate) checksum: [u8; 8],
}

impl FileHeader {
    /// The magic that starts every file entry; the last byte is the format version.
    const MAGIC: [u8; 4] = *b"ORC\x01";
    /// Bytes of the header.
    pub(crate) const LEN: usize = 28;
    /// Bytes needed to read the expiry.
    pub(crate) const EXPIRY_LEN: usize = 12;

    /// The header for `stored`, expiring at `expires_ms`.
    pub(crate) fn for_value(stored: &[u8], expires_ms: u64) -> Self {
        let mut checksum = [0; 8];
        checksum.copy_from_slice(&blake3::hash(stored).as_bytes()[..8]);
        FileHeader {
            expires_ms,
            len: stored.len() as u64,
            checksum,
        }
    }

    /// The header's bytes.
    pub(crate) fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..4].copy_from_slice(&Self::MAGIC);
        out[4..12].copy_from_slice(&self.expires_ms.to_le_bytes());
        out[12..20].copy_from_slice(&self.len.to_le_bytes());
        out[20..28].copy_from_slice(&self.checksum);
        out
    }

    /// The expiry in the first [`Self::EXPIRY_LEN`] bytes of a file entry.
    pub(crate) fn expiry(bytes: &[u8]) -> Result<u64, DecodeError> {
        if bytes.len() < Self::EXPIRY_LEN {
            return Err("truncated header".to_owned());
        }
        if bytes[..4] != Self::MAGIC {
            return Err("not an orc cache entry (bad magic)".to_owned());
        }
        Ok(u64_at(bytes, 4))
    }

    /// The stored value of a whole file entry, checked against its header, and its expiry.
    pub(crate) fn split(file: Bytes) -> Result<(u64, Bytes), DecodeError> {
        let expires_ms = Self::expiry(&file)?;
        if file.len() < Self::LEN {
            return Err("truncated header".to_owned());
        }
        let len = u64_at(&file, 12);
        let stored = file.slice(Self::LEN..);
        if stored.len() as u64 != len {
            return Err(format!(
                "length {} does not match the header's {len}",
                stored.len()
            ));
        }
        if blake3::hash(&stored).as_bytes()[..8] != file[20..28] {
            return Err("checksum mismatch".to_owned());
        }
        Ok((expires_ms, stored))
    }
}

/// The little-endian u64 at `at` (the caller checked the length).
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_compressed_round_trip() {
        let text = "the same words again and again ".repeat(100);
        for compress in [false, true] {
            let stored = encode(text.as_bytes(), compress);
            assert_eq!(stored[0], u8::from(compress));
            assert_eq!(decode(Bytes::from(stored)).unwrap(), text.as_bytes());
        }
        assert!(encode(text.as_bytes(), true).len() < text.len() / 10);
    }

    #[test]
    fn incompressible_values_are_stored_raw() {
        let noise: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let stored = encode(&noise, true);
        assert_eq!(stored[0], RAW);
        assert_eq!(decode(Bytes::from(stored)).unwrap(), noise);
        assert_eq!(decode(Bytes::from_static(&[RAW])).unwrap(), b"".as_slice());
    }

    #[test]
    fn bad_flags_and_frames_are_errors() {
        assert!(decode(Bytes::new()).is_err());
        assert!(decode(Bytes::from_static(&[7, 1, 2])).is_err());
        assert!(decode(Bytes::from_static(&[ZSTD, 1, 2, 3])).is_err());
    }

    #[test]
    fn file_header_round_trip_and_damage() {
        let stored = encode(b"value", false);
        let header = FileHeader::for_value(&stored, 42);
        let mut file = header.to_bytes().to_vec();
        file.extend_from_slice(&stored);
        let (expires, back) = FileHeader::split(Bytes::from(file.clone())).unwrap();
        assert_eq!((expires, &back[..]), (42, &stored[..]));

        for cut in [0, 3, 11, 27, file.len() - 1] {
            assert!(FileHeader::split(Bytes::copy_from_slice(&file[..cut])).is_err());
        }
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(FileHeader::split(Bytes::from(flipped)).is_err());
        let mut magic = file;
        magic[0] = b'X';
        assert!(FileHeader::split(Bytes::from(magic)).is_err());
    }
}
