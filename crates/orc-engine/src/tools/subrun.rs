//! The narrow interface between the `pipeline-executor` tool and whoever runs sub-pipelines
//! (the runtime, which the engine cannot depend on): the engine hands over what to run, the
//! runner starts, resumes or reads back the sub-run and returns its result document.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

/// Runs sub-pipelines for the `pipeline-executor` tool: given to a run in
/// [`Options::sub_runner`](crate::Options::sub_runner) by the runtime, which knows the calling
/// pipeline's file, the run's id, its gateway and budget, and the state store.
pub trait SubRunner: Send + Sync + std::fmt::Debug {
    /// Runs the sub-pipeline of `request` to its end and returns its run. The same
    /// `request.step` of the same parent run always names the same sub-run: one that finished
    /// is read back, one that was interrupted is resumed (its finished steps are not run
    /// again). `Err` says why it could not run at all (not found, invalid, too deep).
    fn run<'a>(
        &'a self,
        request: SubRequest,
    ) -> Pin<Box<dyn Future<Output = Result<SubRun, String>> + Send + 'a>>;
}

/// Where the sub-pipeline's text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubSource {
    /// A file: relative to the calling pipeline's directory, else to the working directory.
    Path(String),
    /// The pipeline's YAML itself.
    Inline(String),
}

impl SubSource {
    /// The `pipeline` parameter as written: text with a line break is inline YAML, anything
    /// else a path.
    pub fn parse(text: &str) -> SubSource {
        if text.trim_end().contains('\n') {
            SubSource::Inline(text.to_owned())
        } else {
            SubSource::Path(text.trim().to_owned())
        }
    }
}

/// One sub-run to make.
#[derive(Debug, Clone)]
pub struct SubRequest {
    /// The calling step's id in the parent run (a loop iteration's own id inside a loop): with
    /// the parent's run id, it names the sub-run.
    pub step: String,
    /// The sub-pipeline.
    pub source: SubSource,
    /// The inputs the step gives.
    pub inputs: Map<String, Value>,
    /// The parent run's inputs, for `inherit_context`: those the sub-pipeline declares (and
    /// `output_path`, under `<parent's>/sub_pipelines/<id>`) unless the step gives them.
    pub inherited: Option<Map<String, Value>>,
}

/// A sub-run that ended.
#[derive(Debug, Clone)]
pub struct SubRun {
    /// Its run id.
    pub run_id: String,
    /// How many sub-pipelines deep it ran (1 for one the top-level run called).
    pub depth: u32,
    /// Its result document.
    pub document: Value,
}
