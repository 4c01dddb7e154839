//! Ctrl-C: running steps are stopped, the partial document is printed, exit 130.

use std::time::{Duration, Instant};

use crate::support::Sandbox;

#[test]
fn interrupt_stops_steps_prints_the_document_and_exits_130() {
    let sb = Sandbox::new();
    let marker = sb.path("survived");
    let p = sb.file(
        "p.yaml",
        &format!(
            "name: t\nsteps:\n  - id: quick\n    action: echo\n    parameters: {{ message: done }}\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: {{ command: \"(sleep 2; touch {}) & sleep 30\", timeout: 60 }}\n  - id: never\n    action: echo\n    parameters: {{ message: x }}\n    dependencies: [slow]\n",
            marker.display()
        ),
    );
    let child = sb
        .command()
        .args(["run", p.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    crate::support::signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "orc took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "interrupted");
    assert_eq!(doc["steps"]["quick"]["status"], "completed");
    assert_eq!(doc["steps"]["slow"]["status"], "cancelled");
    assert_eq!(doc["steps"]["slow"]["error_type"], "Cancelled");
    assert_eq!(doc["steps"]["never"]["status"], "pending");
    // The user is told how to go on: the run's id and the exact command.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = doc["execution_id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "interrupted: run {id} can be resumed with\n  orc resume {id}"
        )),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !marker.exists(),
        "the step's background child outlived the interrupt"
    );
}
