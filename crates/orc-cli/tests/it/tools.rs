//! Tool parameters are declared in one place: the compiler checks every step against the
//! declarations, and `orc tools` prints them.

use crate::support::Sandbox;

#[test]
fn every_parameter_mistake_is_reported_with_its_place_before_anything_runs() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nsteps:\n  - id: slow\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 5; touch ran', timout: 1 }\n  - id: totals\n    tool: data-processing\n    action: aggregate\n    parameters:\n      data: '[]'\n      group_by: region\n      aggregatoins: { n: count }\n  - id: write\n    tool: filesystem\n    action: write\n    parameters: { path: out.txt }\n  - id: nodata\n    tool: validation\n    action: infer_schema\n    parameters: {}\n  - id: py\n    tool: python-executor\n    action: execute\n    parameters: { code: 'print(1)', timeout: [1] }\n",
    );
    for command in ["validate", "run"] {
        let r = sb.orc(&[command, p.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{command}: {}", r.stderr);
        for expected in [
            "error[E022/unknown-parameter]: `terminal` action `execute` has no parameter `timout`\n  --> ",
            "p.yaml:6:50\n",
            "did you mean `timeout`?",
            "p.yaml:13:7\n",
            "`data-processing` action `aggregate` has no parameter `aggregatoins`",
            "did you mean `aggregations`?",
            "error[E002/missing-key]",
            "`filesystem` action `write` needs the parameter `content`",
            "p.yaml:25:46\n",
            "`validation` action `infer_schema` needs one of the parameters `data`, `input_data`",
            "`parameters.timeout` must be a number of seconds, not a list",
            "5 errors found; nothing was run",
        ] {
            assert!(
                r.stderr.contains(expected),
                "{command}: no `{expected}` in:\n{}",
                r.stderr
            );
        }
    }
    assert!(!sb.path("ran").exists());
    assert!(!sb.path("out.txt").exists());
}

#[test]
fn templated_and_text_values_are_left_to_the_run() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "name: t\nparameters:\n  t: { type: number, default: 5 }\nsteps:\n  - id: a\n    tool: terminal\n    action: execute\n    parameters: { command: 'echo hi', timeout: '{{ t }}', max_output_bytes: '100' }\n",
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.doc()["steps"]["a"]["value"]["result"]["stdout"], "hi\n");
}

#[test]
fn orc_tools_prints_the_catalog_the_compiler_uses() {
    let sb = Sandbox::new();
    let r = sb.orc(&["tools"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for tool in [
        "filesystem:",
        "terminal:",
        "python-executor:",
        "data-processing:",
        "validation:",
    ] {
        assert!(r.stdout.contains(tool), "{tool} in:\n{}", r.stdout);
    }
    let r = sb.orc(&["tools", "terminal"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("terminal: "), "{}", r.stdout);
    let timeout = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("timeout"))
        .unwrap();
    assert!(timeout.contains("number, default 30"), "{timeout}");
    let command = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("command"))
        .unwrap();
    assert!(command.contains("string, required"), "{command}");

    let r = sb.orc(&["tools", "data-processing", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let aggregate = doc[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "aggregate")
        .unwrap();
    let names: Vec<&str> = aggregate["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"group_by") && names.contains(&"aggregations"),
        "{names:?}"
    );
    assert!(aggregate["params"][0]["type"].is_string());

    let r = sb.orc(&["tools", "termnal"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `terminal`?"),
        "{}",
        r.stderr
    );
}
