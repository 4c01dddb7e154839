//! Entry points of the fuzz targets (`fuzz/` in the repository), compiled only with the
//! `fuzzing` feature: the API's request bodies read and checked as the routes read them, up
//! to where a model would be called or a run recorded. Each gives the status of the answer
//! a refused request gets.

use axum::Json;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use orc_runtime::Source;

use crate::openai::fuzz_chat_request;
use crate::problem::Problem;
use crate::runs::{Asked, WaitQuery};

/// `POST /v1/chat/completions` with `body`: the model it asks for, or the status of the
/// refusal.
pub fn chat_request(body: &[u8]) -> Result<String, u16> {
    fuzz_chat_request(body)
}

/// `POST /v1/runs` with `body`, checked as [`orc_runtime::Runtime::start`] checks a run
/// before recording it (the body, the run id, the budget, the pipeline's text compiled
/// against the built-in tools, the inputs against its declarations): `Ok` when the run would
/// start, else the status of the refusal.
pub fn run_request(body: &[u8]) -> Result<(), u16> {
    let status = |p: Problem| p.into_response().status().as_u16();
    let mut asked = Asked::read(
        &WaitQuery::default(),
        &HeaderMap::new(),
        Json::from_bytes(body),
    )
    .map_err(status)?;
    let source = asked.source().map_err(status)?;
    if let Some(usd) = asked.budget() {
        orc_models::check_budget("budget", usd)
            .map_err(|e| status(orc_runtime::Error::Refused(e.to_string()).into()))?;
    }
    let Source::Text { name, text } = source else {
        return Ok(());
    };
    let catalog = orc_engine::catalog();
    let compiled = orc_pipeline::compile_bytes(text.as_bytes(), &catalog).map_err(|diags| {
        status(
            orc_runtime::Error::Invalid {
                file: name.clone(),
                text: text.clone(),
                diags,
            }
            .into(),
        )
    })?;
    orc_engine::preflight(&compiled.plan, &asked.take_inputs(), None)
        .map_err(|e| status(orc_runtime::Error::Refused(format!("{name}: {e}")).into()))
}
