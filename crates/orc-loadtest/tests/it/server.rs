//! A tiny HTTP server on 127.0.0.1: `/fast` answers at once, `/slow` after 300 ms, `/stall`
//! after 300 ms the first time and at once after, `/fail` with 503, `POST /echo` with 400 unless its JSON body has a number `n` and a
//! `user` starting with `u`; it counts the requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

pub(crate) struct Tiny {
    pub(crate) base: String,
    pub(crate) hits: Arc<AtomicU64>,
    _task: tokio_util::task::AbortOnDropHandle<()>,
}

impl Tiny {
    pub(crate) async fn start() -> Tiny {
        let hits = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let count = {
            let hits = Arc::clone(&hits);
            move || {
                hits.fetch_add(1, Ordering::Relaxed);
            }
        };
        let (c1, c2, c3, c4, c5) = (
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count,
        );
        let app = Router::new()
            .route(
                "/fast",
                get(move || async move {
                    c1();
                    "ok"
                }),
            )
            .route(
                "/slow",
                get(move || async move {
                    c2();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "ok"
                }),
            )
            .route(
                "/stall",
                get(move || async move {
                    c3();
                    if !stalled.swap(true, Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    "ok"
                }),
            )
            .route(
                "/fail",
                get(move || async move {
                    c4();
                    StatusCode::SERVICE_UNAVAILABLE
                }),
            )
            // Takes the JSON a template rendered: `n` must be a number.
            .route(
                "/echo",
                post(move |body: String| async move {
                    c5();
                    match serde_json::from_str::<serde_json::Value>(&body) {
                        Ok(v)
                            if v["n"].is_u64()
                                && v["user"].as_str().is_some_and(|u| u.starts_with('u')) =>
                        {
                            StatusCode::OK
                        }
                        _ => StatusCode::BAD_REQUEST,
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Tiny {
            base,
            hits,
            _task: tokio_util::task::AbortOnDropHandle::new(task),
        }
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
