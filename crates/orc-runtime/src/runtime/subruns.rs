//! The runtime's side of `pipeline-executor`: the [`SubRunner`] each run is given. It starts a
//! step's sub-run under an id derived from the parent run's and the step's, resumes it when an
//! earlier attempt (or process) left it unfinished, and reads it back when it had completed;
//! a sub-run spends from its parent's budget through the parent's gateway.

use std::future::Future;
use std::pin::Pin;

use orc_engine::{SubRequest, SubRun, SubRunner, SubSource};
use orc_models::Gateway;

use super::{Error, Launch, ResumeOptions, Resumed, RunHandle, Runtime, Source};
use crate::subpipes::{self, MAX_DEPTH, Nesting};

/// The sub-runs of one run.
#[derive(Debug)]
pub(super) struct Runner {
    runtime: Runtime,
    /// The parent run's id.
    parent: String,
    /// The parent's pipeline as diagnostics show it.
    parent_file: String,
    /// The parent's gateway, under the parent's budget.
    gateway: Option<Gateway>,
    /// Where the parent sits.
    nesting: Nesting,
}

impl Runner {
    pub(super) fn new(
        runtime: Runtime,
        parent: &str,
        parent_file: &str,
        gateway: Option<Gateway>,
        nesting: Nesting,
    ) -> Runner {
        Runner {
            runtime,
            parent: parent.to_owned(),
            parent_file: parent_file.to_owned(),
            gateway,
            nesting,
        }
    }
}

impl SubRunner for Runner {
    fn run<'a>(
        &'a self,
        request: SubRequest,
    ) -> Pin<Box<dyn Future<Output = Result<SubRun, String>> + Send + 'a>> {
        Box::pin(self.run_to_end(request))
    }
}

/// Stops a sub-run whose step stopped waiting for it (the step timed out, the parent run was
/// cancelled): the sub-run ends interrupted and is resumed by the next attempt.
struct StopOnDrop(RunHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.0.outcome().is_none() {
            self.0.cancel();
        }
    }
}

impl Runner {
    async fn run_to_end(&self, request: SubRequest) -> Result<SubRun, String> {
        let depth = self.nesting.depth + 1;
        if depth > MAX_DEPTH {
            return Err(format!(
                "sub-pipelines nest more than {MAX_DEPTH} deep (run `{}` is {} deep)",
                self.parent, self.nesting.depth
            ));
        }
        let run_id = subpipes::child_id(&self.parent, &request.step);
        // An earlier attempt this process is still stopping ends before this one starts.
        if let Some(earlier) = self.runtime.running(&run_id)
            && earlier.outcome().is_none()
        {
            let _ = earlier.wait().await;
        }
        let source = match &request.source {
            SubSource::Path(written) => Source::File(subpipes::resolve(
                self.nesting.base_dir.as_deref(),
                written,
                self.runtime.sandbox(),
            )?),
            SubSource::Inline(text) => Source::Text {
                name: format!("{} (step `{}`)", self.parent_file, request.step),
                text: text.clone(),
            },
        };
        let nesting = Nesting {
            depth,
            base_dir: match &source {
                Source::File(path) => Some(match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                    _ => ".".into(),
                }),
                _ => self.nesting.base_dir.clone(),
            },
        };
        let earlier = self
            .runtime
            .store()
            .run(&run_id)
            .await
            .map_err(|e| format!("state store: {e}"))?;
        let handle = if earlier.is_some() {
            let options = ResumeOptions {
                // The parent is resuming: the sub-pipeline's text as it is now runs.
                force: true,
                observers: Vec::new(),
            };
            let nested = Some((self.gateway.clone(), nesting));
            match self.runtime.resume_nested(&run_id, options, nested).await {
                Ok(Resumed::Started(handle)) => handle,
                Ok(Resumed::Completed(Some(doc))) => {
                    let document = serde_json::from_slice(&doc)
                        .map_err(|e| format!("sub-run `{run_id}`: its result document: {e}"))?;
                    return Ok(SubRun {
                        run_id,
                        depth,
                        document,
                    });
                }
                Ok(Resumed::Completed(None)) => {
                    return Err(format!(
                        "sub-run `{run_id}` completed, but the state store has no result document for it"
                    ));
                }
                Err(e) => return Err(message(e)),
            }
        } else {
            self.start(&run_id, source, request, nesting)
                .await
                .map_err(message)?
        };
        let stop = StopOnDrop(handle);
        let outcome = stop.0.wait().await;
        let result = outcome.map_err(|e| format!("sub-run `{run_id}`: {e}"))?;
        let document = serde_json::to_value(&*result)
            .map_err(|e| format!("sub-run `{run_id}`: its result document: {e}"))?;
        Ok(SubRun {
            run_id,
            depth,
            document,
        })
    }

    /// The sub-run's first attempt: its inputs are the step's, with what it inherits.
    async fn start(
        &self,
        run_id: &str,
        source: Source,
        request: SubRequest,
        nesting: Nesting,
    ) -> Result<RunHandle, Error> {
        let file = source.name();
        let (loaded, path) = self.runtime.load(&source, self.gateway.clone()).await?;
        let inputs = subpipes::inputs(
            &loaded.compiled.plan,
            request.inputs,
            request.inherited.as_ref(),
        );
        self.runtime
            .launch(Launch {
                loaded,
                path,
                file,
                inputs,
                run_id: run_id.to_owned(),
                gateway: self.gateway.clone(),
                observers: Vec::new(),
                nesting,
            })
            .await
    }
}

/// Why a sub-run could not run, as the step's error: an invalid sub-pipeline with its findings.
fn message(e: Error) -> String {
    match e {
        Error::Invalid { file, text, diags } => subpipes::findings(&diags, &file, &text),
        other => other.to_string(),
    }
}
