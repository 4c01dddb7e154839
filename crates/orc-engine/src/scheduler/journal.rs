//! Where finished steps are made durable.

use crate::result::StepRecord;

/// A durable log of finished steps (the state store's checkpoints).
///
/// [`Journal::append`] is awaited before the steps' dependents start; steps that finish
/// together are appended in one call.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Writes the records of steps that just finished.
    fn append<'a>(
        &'a self,
        records: &'a [StepRecord],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
    >;
}
