//! How values are stored: times as microseconds since the Unix epoch, payloads (checkpoint
//! envelopes, result documents) as bytes with a flag that says whether they are zstd frames.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// zstd's level: fast, and most of the gain on JSON.
const LEVEL: i32 = 3;
/// Payloads shorter than this are stored as they are: zstd's frame overhead eats the gain.
const MIN_COMPRESS: usize = 128;
/// Payloads (all of one call's together) at least this long are compressed or decompressed on the
/// blocking pool instead of the async worker.
pub(crate) const INLINE_LIMIT: usize = 64 * 1024;

thread_local! {
    /// One compression context per thread: making one costs more than compressing a small payload.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Microseconds since the Unix epoch (negative before it).
pub(crate) fn micros(t: SystemTime, what: impl FnOnce() -> String) -> Result<i64> {
    let (since, negative) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d, false),
        Err(e) => (e.duration(), true),
    };
    let us = i64::try_from(since.as_micros()).map_err(|_| Error::InvalidValue {
        what: what(),
        reason: "the time is too far from 1970".to_owned(),
    })?;
    Ok(if negative { -us } else { us })
}

/// [`micros`] of an optional time.
pub(crate) fn micros_opt(
    t: Option<SystemTime>,
    what: impl FnOnce() -> String,
) -> Result<Option<i64>> {
    t.map(|t| micros(t, what)).transpose()
}

/// The time `us` microseconds after the Unix epoch.
pub(crate) fn from_micros(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> i64 {
    micros(SystemTime::now(), String::new).unwrap_or(i64::MAX)
}

/// Whole milliseconds of `d`, at least 1.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// A payload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The payload, or its zstd frame.
    pub(crate) bytes: Vec<u8>,
    /// Whether `bytes` is a zstd frame.
    pub(crate) compressed: bool,
}

/// `raw` as stored: compressed when `compress` is set, it is long enough and that saves space.
pub(crate) fn pack(raw: Vec<u8>, compress: bool) -> Packed {
    if compress && raw.len() >= MIN_COMPRESS {
        let frame = COMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = zstd::bulk::Compressor::new(LEVEL).ok();
            }
            cell.as_mut().and_then(|c| c.compress(&raw).ok())
        });
        if let Some(frame) = frame.filter(|f| f.len() < raw.len()) {
            return Packed {
                bytes: frame,
                compressed: true,
            };
        }
    }
    Packed {
        bytes: raw,
        compressed: false,
    }
}

/// [`pack`] for each payload, on the blocking pool when there is a lot to compress.
pub(crate) async fn pack_all(raws: Vec<Vec<u8>>, compress: bool) -> Vec<Packed> {
    let total: usize = raws.iter().map(Vec::len).sum();
    if !compress || total < INLINE_LIMIT {
        return raws.into_iter().map(|raw| pack(raw, compress)).collect();
    }
    let work = move || {
        raws.into_iter()
            .map(|raw| pack(raw, true))
            .collect::<Vec<_>>()
    };
    tokio::task::spawn_blocking(work)
        .await
        // The blocking pool only fails to run the work when the runtime is shutting down; the
        // caller is gone by then, so what is returned does not matter.
        .unwrap_or_default()
}

/// The payload stored as `bytes`.
pub(crate) fn unpack(bytes: Vec<u8>, compressed: bool) -> Result<Vec<u8>, String> {
    if compressed {
        zstd::stream::decode_all(bytes.as_slice()).map_err(|e| format!("zstd: {e}"))
    } else {
        Ok(bytes)
    }
}

/// [`unpack`] on the blocking pool when the frame is large.
pub(crate) async fn unpack_async(bytes: Vec<u8>, compressed: bool) -> Result<Vec<u8>, String> {
    if !compressed || bytes.len() < INLINE_LIMIT / 8 {
        return unpack(bytes, compressed);
    }
    tokio::task::spawn_blocking(move || unpack(bytes, compressed))
        .await
        .map_err(|e| format!("decompression did not finish: {e}"))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times_round_trip_to_the_microsecond() {
        for us in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_000] {
            assert_eq!(micros(from_micros(us), String::new).unwrap(), us);
        }
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert!(micros(far, || "t".to_owned()).is_err());
    }

    #[test]
    fn payloads_compress_only_when_it_pays() {
        let small = b"{\"ok\":true}".to_vec();
        assert_eq!(
            pack(small.clone(), true),
            Packed {
                bytes: small,
                compressed: false
            }
        );
        let big = "{\"result\":\"the same words again\"}"
            .repeat(50)
            .into_bytes();
        let packed = pack(big.clone(), true);
        assert!(packed.compressed && packed.bytes.len() < big.len() / 4);
        assert_eq!(unpack(packed.bytes, true).unwrap(), big);
        assert!(!pack(big.clone(), false).compressed);
        let random: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
        assert!(!pack(random, true).compressed);
        assert!(unpack(b"not zstd".to_vec(), true).is_err());
    }
}
