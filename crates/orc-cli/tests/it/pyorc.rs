//! py-orc's pipeline language beyond the supported subset, through the real binary: the
//! `output_path` every pipeline takes, the clock names, `continue_on_error`.

use crate::support::Sandbox;

/// Written as py-orc's examples write it: files under `{{ output_path }}`, a shell step that
/// expects the directory to exist, the date in the text, and a step allowed to fail.
const REPORT: &str = r#"id: report_maker
name: Report maker
steps:
  - id: listing
    tool: terminal
    action: execute
    parameters:
      command: "test -d {{ output_path }} && echo ready"
  - id: save
    tool: filesystem
    action: write
    parameters:
      path: "{{ output_path }}/report.md"
      content: "made on {{ current_date }} at {{ current_timestamp }}"
    dependencies: [listing]
  - id: flaky
    tool: terminal
    action: execute
    parameters:
      command: "exit 3"
    continue_on_error: true
  - id: after
    tool: terminal
    action: execute
    parameters:
      command: "echo after"
    dependencies: [flaky]
outputs:
  where: "{{ output_path }}"
  ready: "{{ listing.result.stdout | trim }}"
"#;

#[test]
fn output_path_defaults_to_outputs_of_the_pipeline_and_exists_before_the_first_step() {
    let sb = Sandbox::new();
    let p = sb.file("report.yaml", REPORT);
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    let doc = r.doc();
    assert_eq!(
        doc["outputs"]["where"], "outputs/report_maker",
        "{}",
        r.stderr
    );
    assert_eq!(doc["outputs"]["ready"], "ready");
    let text = sb.read("outputs/report_maker/report.md");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        text.starts_with(&format!("made on {today} at {today}T")),
        "{text}"
    );
    // `continue_on_error: true` is `on_failure: continue`: its dependents run, the run fails.
    assert_eq!(doc["steps"]["flaky"]["status"], "failed");
    assert_eq!(doc["steps"]["after"]["status"], "completed");
    assert_eq!(r.code, 1);
}

#[test]
fn output_path_is_an_input_every_pipeline_takes() {
    let sb = Sandbox::new();
    let p = sb.file("report.yaml", REPORT);
    let dir = sb.path("elsewhere/run1");
    let arg = format!("output_path={}", dir.display());
    let r = sb.orc(&["run", p.to_str().unwrap(), "-i", &arg]);
    assert_eq!(
        r.doc()["outputs"]["where"],
        dir.to_str().unwrap(),
        "{}",
        r.stderr
    );
    assert!(sb.read("elsewhere/run1/report.md").starts_with("made on "));
    assert!(!sb.path("outputs").exists());
}

#[test]
fn continue_on_error_and_on_failure_together_are_refused() {
    let sb = Sandbox::new();
    let p = sb.file(
        "both.yaml",
        "id: both\nname: Both\nsteps:\n  - id: a\n    action: echo\n    on_failure: skip\n    continue_on_error: true\n",
    );
    let r = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("both.yaml:7:24")
            && r.stderr
                .contains("both `on_failure` and `continue_on_error`"),
        "{}",
        r.stderr
    );
}

/// py-orc's `data_processing_pipeline` example's steps, as it writes them: a key repeated in
/// one mapping (`mode`), `profiling_options`, py-orc's transform steps, `output_format` and
/// `pivot`.
const SALES: &str = r#"id: sales
name: Sales
steps:
  - id: read_data
    tool: filesystem
    action: read
    parameters:
      path: "sales.csv"
  - id: profile_data
    tool: data-processing
    action: profile
    parameters:
      data: "{{ read_data.result.content }}"
      format: "csv"
      profiling_options:
        - missing_values
        - statistical_summary
        - outlier_detection
        - duplicate_detection
  - id: validate_schema
    tool: validation
    action: validate
    parameters:
      data: "{{ read_data.result.content }}"
      mode: "CSV"
      schema:
        type: object
        required: ["order_id"]
      mode: "lenient"
  - id: clean_data
    tool: data-processing
    action: transform
    parameters:
      data: "{{ read_data.result.content }}"
      format: "csv"
      output_format: "json"
      operations:
        - type: deduplicate
          columns: ["order_id"]
          keep: "first"
        - type: cast
          columns:
            quantity: "integer"
            unit_price: "float"
            order_date: "datetime"
        - type: fill_missing
          strategy:
            status: "pending"
        - type: calculate
          expressions:
            total_amount: "quantity * unit_price"
            order_month: "DATE_FORMAT(order_date, '%Y-%m')"
        - type: filter
          condition: "status != 'cancelled'"
  - id: aggregate_monthly
    tool: data-processing
    action: aggregate
    parameters:
      data: "{{ clean_data.result.data }}"
      output_format: "csv"
      group_by: ["order_month"]
      aggregations:
        total_revenue:
          column: "total_amount"
          function: "sum"
        unique_customers:
          column: "customer_id"
          function: "count_distinct"
  - id: pivot_analysis
    tool: data-processing
    action: pivot
    parameters:
      data: "{{ clean_data.result.data }}"
      format: "json"
      output_format: "json"
      index: ["product_name"]
      columns: ["status"]
      values: ["quantity"]
      aggfunc: "sum"
      fill_value: 0
outputs:
  missing_status: "{{ profile_data.result.column_profiles.status.missing_count }}"
  qty_outliers: "{{ profile_data.result.column_profiles.quantity.outlier_count }}"
  duplicates: "{{ profile_data.result.duplicate_rows }}"
  mode: "{{ validate_schema.result.mode }}"
  cleaned: "{{ clean_data.result.data | to_json }}"
  monthly: "{{ aggregate_monthly.result.data }}"
  pivot: "{{ pivot_analysis.result.data | to_json }}"
  pivot_columns: "{{ pivot_analysis.result.columns | to_json }}"
"#;

const SALES_CSV: &str = "order_id,customer_id,product_name,quantity,unit_price,order_date,status
ORD-1,C1,Widget,2,2.5,2024-01-05,shipped
ORD-1,C1,Widget,2,2.5,2024-01-05,shipped
ORD-2,C2,Gadget,1,10,2024-01-20,
ORD-3,C1,Widget,3,2.5,2024-02-02 09:30:00,cancelled
ORD-4,C3,Gadget,4,10,2024-02-11,delivered
ORD-5,C2,Widget,100,2.5,2024-02-12,shipped
";

#[test]
fn py_orc_data_processing_steps_run_as_the_examples_write_them() {
    let sb = Sandbox::new();
    sb.file("sales.csv", SALES_CSV);
    let p = sb.file("sales.yaml", SALES);
    // The repeated `mode` is a warning naming both lines; the later value is used.
    let v = sb.orc(&["validate", p.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stderr.contains("W103")
            && v.stderr.contains("sales.yaml:29:7")
            && v.stderr.contains("first at line 25"),
        "{}",
        v.stderr
    );
    let r = sb.orc(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.doc()["outputs"];
    assert_eq!(out["missing_status"], 1);
    assert_eq!(out["qty_outliers"], 1, "quantity 100 is outside 1.5×IQR");
    assert_eq!(out["duplicates"], 1);
    assert_eq!(out["mode"], "lenient");
    let cleaned = &out["cleaned"];
    assert_eq!(
        cleaned.as_array().map(Vec::len),
        Some(4),
        "one duplicate and one cancelled order dropped: {cleaned}"
    );
    assert_eq!(cleaned[0]["total_amount"], 5.0);
    assert_eq!(cleaned[0]["order_month"], "2024-01");
    assert_eq!(cleaned[0]["order_date"], "2024-01-05T00:00:00");
    assert_eq!(cleaned[1]["status"], "pending", "filled");
    assert_eq!(
        out["monthly"],
        "order_month,total_revenue,unique_customers\n2024-01,15.0,2\n2024-02,290.0,2\n"
    );
    assert_eq!(
        out["pivot"],
        serde_json::json!([
            {"product_name": "Widget", "shipped": 102, "pending": 0, "delivered": 0},
            {"product_name": "Gadget", "shipped": 0, "pending": 1, "delivered": 4},
        ])
    );
    assert_eq!(
        out["pivot_columns"],
        serde_json::json!(["shipped", "pending", "delivered"])
    );
}
