//! The fixtures: snapshots of what the compiler says about each, and focused checks.

use std::path::Path;

use orc_pipeline::{Code, Diagnostics, Severity, compile, compile_bytes};

use crate::common::{catalog, catalog_for, expected_codes, fixtures, numbered, summary};

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("fixture file name")
        .to_string()
}

fn compile_err(name: &str, source: &str) -> Diagnostics {
    match compile(source, &catalog_for(source)) {
        Ok(c) => panic!(
            "{name} compiled, but must fail; findings:\n{}",
            c.findings.render(name, source)
        ),
        Err(diags) => diags,
    }
}

fn codes(diags: &Diagnostics) -> Vec<String> {
    let mut codes: Vec<String> = diags.0.iter().map(|d| d.code.to_string()).collect();
    codes.sort();
    codes
}

#[test]
fn ok_fixtures_compile() {
    insta::glob!("../fixtures", "ok_*.yaml", |path| {
        let name = file_name(path);
        let source = std::fs::read_to_string(path).expect("fixture");
        let compiled = match compile(&source, &catalog_for(&source)) {
            Ok(c) => c,
            Err(diags) => panic!("{name} must compile:\n{}", diags.render(&name, &source)),
        };
        assert!(
            !compiled.findings.has_errors(),
            "{name}: a compiled plan carries errors"
        );
        let snapshot = format!(
            "---- {name} ----\n{}---- plan ----\n{}",
            numbered(&source),
            summary(&name, &source, &compiled)
        );
        insta::assert_snapshot!(snapshot);
    });
}

#[test]
fn err_fixtures_fail() {
    insta::glob!("../fixtures", "err_*.yaml", |path| {
        let name = file_name(path);
        let source = std::fs::read_to_string(path).expect("fixture");
        let diags = compile_err(&name, &source);
        let snapshot = format!(
            "---- {name} ----\n{}---- diagnostics ----\n{}",
            numbered(&source),
            diags.render(&name, &source)
        );
        insta::assert_snapshot!(snapshot);
    });
}

/// Every fixture as written and the bytes case that cannot be a text file.
fn all_err_cases() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = fixtures("err_")
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    cases.push(("non_utf8.yaml".into(), NON_UTF8.to_vec()));
    cases
}

/// `naïve` is UTF-8; the Latin-1 `é` (0xE9) after `caf` is not.
const NON_UTF8: &[u8] = b"name: bytes\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: \"na\xc3\xafve caf\xe9 \xff\" }\n";

#[test]
fn non_utf8_bytes_are_refused_where_they_are() {
    let diags = match compile_bytes(NON_UTF8, &catalog()) {
        Ok(_) => panic!("non-UTF-8 bytes compiled"),
        Err(d) => d,
    };
    assert_eq!(codes(&diags), ["E001"]);
    let d = &diags.0[0];
    // Columns count characters: `ï` is one, so the 0xE9 byte is at column 38 of line 5.
    assert_eq!((d.pos.line, d.pos.col), (5, 38), "{d:?}");
    let source = String::from_utf8_lossy(NON_UTF8);
    let snapshot = format!(
        "---- non_utf8.yaml (bytes) ----\n{}---- diagnostics ----\n{}",
        numbered(&source),
        diags.render("non_utf8.yaml", &source)
    );
    insta::assert_snapshot!(snapshot);
}

#[test]
fn every_err_diagnostic_has_a_position_a_code_and_an_error() {
    for (name, bytes) in all_err_cases() {
        let diags = match compile_bytes(&bytes, &catalog_for(&String::from_utf8_lossy(&bytes))) {
            Ok(_) => panic!("{name} compiled"),
            Err(d) => d,
        };
        assert!(diags.has_errors(), "{name}: no error among {diags:?}");
        for d in &diags.0 {
            assert!(
                d.pos.line > 0 && d.pos.col > 0,
                "{name}: no position for {d:?}"
            );
            assert_eq!(d.severity, d.code.severity(), "{name}: {d:?}");
            assert!(!d.message.is_empty(), "{name}: empty message {d:?}");
            assert!(
                d.severity != Severity::Info,
                "{name}: a failed compile reports notes: {d:?}"
            );
            // The caret line points into the text: the line exists and is long enough.
            let source = String::from_utf8_lossy(&bytes);
            let line = source.lines().nth(d.pos.line as usize - 1);
            let line = line
                .unwrap_or_else(|| panic!("{name}: line {} is past the end: {d:?}", d.pos.line));
            assert!(
                d.pos.col as usize <= line.chars().count() + 1,
                "{name}: column {} is past the end of `{line}`: {d:?}",
                d.pos.col
            );
            // And at something: the offending value or key, not blank space.
            let at = line.chars().nth(d.pos.col as usize - 1);
            assert!(
                at.is_some_and(|c| !c.is_whitespace()) || d.code == Code::E001,
                "{name}: {d:?} points at {at:?} in `{line}`"
            );
            let rendered = d.render(&name, &source);
            assert!(
                rendered.starts_with(&format!("error[{}/{}]", d.code, d.code.name()))
                    || rendered.starts_with(&format!("warning[{}/", d.code)),
                "{name}: {rendered}"
            );
        }
    }
}

#[test]
fn fixtures_report_exactly_the_expected_codes() {
    // Each fixture lists what it must report in `# expect:` comments, so every problem in a
    // file with several is accounted for, none hides another, and none is reported twice.
    let mut mismatches = Vec::new();
    for (name, source) in fixtures("err_") {
        let expected = expected_codes(&source);
        assert!(!expected.is_empty(), "{name} has no `# expect:` line");
        let diags = compile_err(&name, &source);
        if codes(&diags) != expected {
            mismatches.push(format!(
                "{name}: expected {expected:?}, got {:?}\n{}",
                codes(&diags),
                diags.render(&name, &source)
            ));
        }
    }
    for (name, source) in fixtures("ok_") {
        let expected = expected_codes(&source);
        let compiled = compile(&source, &catalog_for(&source)).expect("ok fixture compiles");
        let mut got: Vec<String> = compiled
            .findings
            .0
            .iter()
            .map(|d| d.code.to_string())
            .collect();
        got.sort();
        if got != expected {
            mismatches.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

fn fixture(name: &str) -> String {
    fixtures("err_")
        .into_iter()
        .chain(fixtures("ok_"))
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1
}

#[test]
fn the_cycle_message_names_the_whole_cycle() {
    let source = fixture("err_cycle.yaml");
    let diags = compile_err("err_cycle.yaml", &source);
    let cycles: Vec<&str> = diags
        .0
        .iter()
        .filter(|d| d.code == Code::E007 && d.message.starts_with("dependency cycle"))
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(cycles.len(), 1, "{diags:?}");
    let path: Vec<&str> = cycles[0]
        .trim_start_matches("dependency cycle: ")
        .split(" -> ")
        .collect();
    // A closed walk over exactly the three steps of the cycle, in dependency order.
    assert_eq!(path.len(), 4, "{}", cycles[0]);
    assert_eq!(path.first(), path.last(), "{}", cycles[0]);
    let mut members = path[..3].to_vec();
    members.sort_unstable();
    assert_eq!(members, ["alpha", "beta", "gamma"], "{}", cycles[0]);
    // alpha waits for gamma, gamma for beta, beta for alpha.
    let rotations = [
        "alpha -> gamma -> beta -> alpha",
        "gamma -> beta -> alpha -> gamma",
        "beta -> alpha -> gamma -> beta",
    ];
    assert!(
        rotations.contains(&cycles[0].trim_start_matches("dependency cycle: ")),
        "{}",
        cycles[0]
    );
    // The step `outside` waits on the cycle but is not part of it.
    assert!(!cycles[0].contains("outside"), "{}", cycles[0]);
}

#[test]
fn a_multi_problem_file_reports_every_problem_at_its_place() {
    let source = fixture("err_wrong_types.yaml");
    let diags = compile_err("err_wrong_types.yaml", &source);
    // One diagnostic per line marked `# <- E…`, at that line.
    let marked: Vec<(u32, String)> = source
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let code = l.split("# <- ").nth(1)?.trim().to_string();
            Some((u32::try_from(i + 1).expect("line"), code))
        })
        .collect();
    assert!(marked.len() >= 10, "{marked:?}");
    let got: Vec<(u32, String)> = diags
        .0
        .iter()
        .map(|d| (d.pos.line, d.code.to_string()))
        .collect();
    assert_eq!(
        got,
        marked,
        "{}",
        diags.render("err_wrong_types.yaml", &source)
    );
}

#[test]
fn extra_inputs_is_read_into_the_plan() {
    let text = "name: t\nsteps:\n  - id: a\n    action: echo\n";
    let plan = |t: &str| compile(t, &catalog()).expect("compiles").plan;
    assert!(!plan(text).extra_inputs);
    assert!(plan(&format!("extra_inputs: true\n{text}")).extra_inputs);
    assert!(!plan(&format!("extra_inputs: false\n{text}")).extra_inputs);
}
