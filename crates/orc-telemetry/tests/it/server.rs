use std::net::SocketAddr;
use std::time::Duration;

use orc_telemetry::names::{self, label};
use orc_telemetry::{CONTENT_TYPE, Exporter, MetricsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A response read off the wire.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `GET path` over a fresh TCP connection, HTTP/1.1 with `Connection: close`.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

/// `METHOD path` over a fresh TCP connection, HTTP/1.1 with `Connection: close`.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers within 10 s")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn start() -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    let exporter = Exporter::global().unwrap();
    let server = MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), exporter)
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.run(cancel.clone()));
    (addr, cancel, task)
}

async fn stop(cancel: CancellationToken, task: JoinHandle<()>) {
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the server stops within 5 s of being cancelled")
        .unwrap();
}

/// The value of the sample line that starts with `series ` (labels included).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn scrape_shows_counters_histograms_and_process_metrics() {
    let (addr, cancel, task) = start().await;

    metrics::counter!(names::PIPELINE_RUNS_TOTAL,
        label::PIPELINE => "it-scrape", label::OUTCOME => "success")
    .increment(3);
    for seconds in [0.2, 7.0] {
        metrics::histogram!(names::STEP_DURATION_SECONDS,
            label::TOOL => "it-scrape", label::ACTION => "generate", label::OUTCOME => "success")
        .record(seconds);
    }

    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(CONTENT_TYPE));
    let text = &reply.body;

    let runs = r#"orc_pipeline_runs_total{pipeline="it-scrape",outcome="success"}"#;
    assert_eq!(sample(text, runs), Some(3.0), "{text}");
    assert!(
        text.contains("# TYPE orc_pipeline_runs_total counter"),
        "{text}"
    );

    let step = r#"tool="it-scrape",action="generate",outcome="success""#;
    let bucket = |le: &str| {
        sample(
            text,
            &format!(r#"orc_step_duration_seconds_bucket{{{step},le="{le}"}}"#),
        )
    };
    assert_eq!(bucket("0.1"), Some(0.0), "{text}");
    assert_eq!(bucket("0.25"), Some(1.0), "{text}");
    assert_eq!(bucket("5"), Some(1.0), "{text}");
    assert_eq!(bucket("10"), Some(2.0), "{text}");
    assert_eq!(bucket("600"), Some(2.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(2.0), "{text}");
    assert_eq!(
        sample(text, &format!("orc_step_duration_seconds_count{{{step}}}")),
        Some(2.0)
    );
    let sum = sample(text, &format!("orc_step_duration_seconds_sum{{{step}}}")).unwrap();
    assert!((sum - 7.2).abs() < 1e-9, "{sum}");
    assert!(
        text.contains("# TYPE orc_step_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# HELP orc_step_duration_seconds How long a step ran."),
        "{text}"
    );

    let rss = sample(text, names::PROCESS_RESIDENT_MEMORY_BYTES).expect("a resident memory sample");
    assert!(rss > 0.0, "{rss}");
    let cpu = sample(text, names::PROCESS_CPU_SECONDS_TOTAL).expect("a CPU sample");
    assert!(cpu >= 0.0, "{cpu}");

    stop(cancel, task).await;
}

#[tokio::test]
async fn an_address_in_use_is_a_clear_error() {
    let (addr, cancel, task) = start().await;

    let error = MetricsServer::bind(addr, Exporter::global().unwrap())
        .await
        .expect_err("the address is taken");
    let message = error.to_string();
    let expected = format!("cannot listen on {addr} for metrics: address already in use\n");
    assert!(message.starts_with(&expected), "{message}");

    stop(cancel, task).await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let (addr, cancel, task) = start().await;

    assert_eq!(get(addr, "/").await.status, 404);
    assert_eq!(get(addr, "/metrics/extra").await.status, 404);
    // A query string does not change the path.
    assert_eq!(get(addr, "/metrics?x=1").await.status, 200);

    stop(cancel, task).await;
}

#[tokio::test]
async fn other_methods_are_not_allowed_and_say_which_is() {
    let (addr, cancel, task) = start().await;

    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let reply = request(addr, method, "/metrics").await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET"), "{method}");
        if method != "HEAD" {
            assert_eq!(reply.body, "use GET /metrics\n", "{method}");
        }
    }
    let reply = get(addr, "/nowhere").await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.body, "not found: orc serves GET /metrics\n");

    stop(cancel, task).await;
}

#[tokio::test]
async fn the_server_stops_when_cancelled_even_with_an_idle_connection_open() {
    let (addr, cancel, task) = start().await;
    let idle = TcpStream::connect(addr).await.unwrap();
    // Served once, then left open with keep-alive.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    stop(cancel, task).await;

    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after cancel"
    );
    drop((idle, kept));
}
