//! What a built-in tool is: its declaration (the actions and parameters the compiler checks
//! steps against and `orc tools` prints) and the call that runs one of those actions.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use orc_pipeline::ToolSpec;
use serde_json::{Map, Value};

use super::Envelope;
use crate::resources::ToolLimits;

/// A running tool call. Boxed so that tools of different kinds sit behind one `dyn Tool`.
pub(crate) type Call<'a> = Pin<Box<dyn Future<Output = Envelope> + Send + 'a>>;

/// A built-in tool. The registry (`super::registry`) lists every one; the catalog is
/// their declarations, and a call reaches [`Tool::call`] only for an action the
/// declaration names.
pub(crate) trait Tool: Send + Sync {
    /// Its declaration: the name steps give as `tool:`, what it does, and every action with
    /// the parameters it reads.
    fn spec(&self) -> ToolSpec;

    /// Runs `action`, one of the actions [`Tool::spec`] declares, with rendered parameters.
    fn call<'a>(
        &'a self,
        action: &'a str,
        params: Map<String, Value>,
        limits: &'a ToolLimits,
    ) -> Call<'a>;

    /// Its own message for an action it does not declare; `None` for the usual
    /// ``tool `NAME` has no action `ACTION` ``.
    fn unknown_action(&self, _action: &str) -> Option<String> {
        None
    }

    /// How long past its step's deadline it may take to stop what it started and report.
    fn stop_grace(&self) -> Duration {
        Duration::ZERO
    }
}
