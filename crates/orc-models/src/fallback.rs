//! [`Fallback`]: one step down a fallback chain, as the result document and error
//! messages tell it. A leaf, so errors and answers can name fallbacks without
//! depending on the router that orders them.

use serde::{Deserialize, Serialize};

/// One fallback taken: the call to `from` failed for `reason`, so `to` was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// The model that failed.
    pub from: String,
    /// The model tried next.
    pub to: String,
    /// Why `from` failed.
    pub reason: String,
}
