//! The declared parameters of every `data-processing` and `validation` action.
//!
//! The pipeline compiler checks each step's `parameters` against [`ACTIONS`]:
//! an undeclared name, a missing required one or a literal of the wrong kind
//! is a compile error. The declarations therefore list exactly the top-level
//! keys each action's code reads, aliases included (an alias is declared as a
//! parameter of its own). When one of several alternatives is needed (e.g.
//! `data` or its alias `input_data`), none of them is marked required and the
//! description says so; the action itself reports the missing one.
//!
//! Kinds are `string`, `number`, `integer`, `boolean`, `list`, `mapping` and
//! `any`. As at run time, a `mapping` or `list` parameter also accepts text
//! holding a JSON (or Python-literal) map or list, a `number` a numeric
//! string, and a `boolean` `0`/`1` or words such as `"yes"`/`"false"`.

/// One parameter of a tool action, as the action's code reads it.
#[derive(Debug, Clone, Copy)]
pub struct ParamDecl {
    /// The parameter's key in the step's `parameters`.
    pub name: &'static str,
    /// Its kind: `string`, `number`, `integer`, `boolean`, `list`, `mapping` or `any`.
    pub kind: &'static str,
    /// Whether the action fails without it.
    pub required: bool,
    /// The value used when it is absent, as text (e.g. `"\"csv\""` or `1000`).
    pub default: Option<&'static str>,
    /// A one-line description for users.
    pub description: &'static str,
}

/// One action of a tool.
#[derive(Debug, Clone, Copy)]
pub struct ActionDecl {
    /// The tool's name: `data-processing` or `validation`.
    pub tool: &'static str,
    /// The action's name.
    pub action: &'static str,
    /// A one-line description for users.
    pub description: &'static str,
    /// Every parameter the action reads.
    pub params: &'static [ParamDecl],
    /// Groups of alternatives: the action fails unless at least one parameter of each group is
    /// given (`data` or its alias `input_data`; `criteria` or `operation`).
    pub one_of: &'static [&'static [&'static str]],
}

/// The data every action reads: `data` or its alias `input_data`.
const DATA_GROUP: &[&str] = &["data", "input_data"];

const fn param(
    name: &'static str,
    kind: &'static str,
    default: Option<&'static str>,
    description: &'static str,
) -> ParamDecl {
    ParamDecl {
        name,
        kind,
        required: false,
        default,
        description,
    }
}

const fn required(name: &'static str, kind: &'static str, description: &'static str) -> ParamDecl {
    ParamDecl {
        name,
        kind,
        required: true,
        default: None,
        description,
    }
}

const DATA: ParamDecl = param(
    "data",
    "any",
    None,
    "The input: a list of records, one record, a file path, or JSON/JSON Lines/CSV/Python-literal text (this or `input_data` is required).",
);
const INPUT_DATA: ParamDecl = param(
    "input_data",
    "any",
    None,
    "Alias of `data`, used when `data` is absent.",
);
const FORMAT: ParamDecl = param(
    "format",
    "string",
    Some("\"auto\""),
    "The text format of string input: json, csv, jsonl or auto (sniffed; a file's extension first).",
);
const INPUT_FORMAT: ParamDecl = param(
    "input_format",
    "string",
    Some("\"auto\""),
    "Alias of `format`, used when `format` is absent.",
);

const CONVERT: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    required(
        "output_format",
        "string",
        "The format to write: json (pretty-printed) or csv.",
    ),
];

const FILTER: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    param(
        "criteria",
        "mapping",
        None,
        "Field to value (equality) or to operators such as {gt: 5}, all of which must hold (this or `operation` is required).",
    ),
    param(
        "operation",
        "mapping",
        None,
        "A map whose `criteria` member is used when `criteria` is absent.",
    ),
];

/// `output_format` of the actions that give a table.
const TABLE_OUTPUT: ParamDecl = param(
    "output_format",
    "string",
    Some("\"json\""),
    "How `data` is given: json (a list of records) or csv (CSV text).",
);

const AGGREGATE: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    TABLE_OUTPUT,
    param(
        "group_by",
        "any",
        None,
        "A field name or a list of them to group by; without it all rows form one group (this or `aggregations` is required).",
    ),
    param(
        "aggregations",
        "mapping",
        None,
        "Output column to \"op:field\", \"count\" or {op, field}; ops count sum mean avg min max first last count_distinct (defaults to {count: count} with `group_by`).",
    ),
];

const TRANSFORM: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    TABLE_OUTPUT,
    param(
        "operations",
        "list",
        None,
        "Steps applied in order, each {type: filter|aggregate|select|drop|rename|sort|limit|compute|deduplicate|cast|fill_missing|calculate, ...}.",
    ),
    param(
        "operation",
        "mapping",
        None,
        "py-orc's form: {transformations: [steps]}; filter {field, value} and aggregate {operation, field} steps too.",
    ),
];

const PROFILE: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    param(
        "profiling_options",
        "list",
        None,
        "Extra sections: missing_values, data_types, statistical_summary, outlier_detection, duplicate_detection.",
    ),
];

const PIVOT: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    TABLE_OUTPUT,
    required(
        "index",
        "any",
        "A column or a list of them: one row per distinct value.",
    ),
    param(
        "columns",
        "any",
        None,
        "A column or a list of them: one output column per distinct value (none: one per `values` column).",
    ),
    required(
        "values",
        "any",
        "A column or a list of them, aggregated in each cell.",
    ),
    param(
        "aggfunc",
        "string",
        Some("\"sum\""),
        "How a cell's values combine: count sum mean avg min max first last count_distinct.",
    ),
    param(
        "fill_value",
        "any",
        Some("0"),
        "The value of a cell no row falls in.",
    ),
];

const CLEAN: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    param(
        "remove_duplicates",
        "boolean",
        Some("true"),
        "Whether to drop rows identical to an earlier one.",
    ),
    param(
        "handle_missing",
        "string",
        Some("\"none\""),
        "What to do with null or absent cells: none, drop (the row) or fill (with `fill_value`).",
    ),
    param(
        "fill_value",
        "any",
        None,
        "The value for missing cells, or a map of column to value (required when `handle_missing` is fill).",
    ),
    param(
        "remove_outliers",
        "boolean",
        Some("false"),
        "Whether to drop rows outside 1.5×IQR in any all-numeric column.",
    ),
];

const MERGE: &[ParamDecl] = &[
    param(
        "datasets",
        "any",
        None,
        "The datasets to merge: a list (or a map whose values are used) of at least two inputs (this, or `data` with `other`, is required).",
    ),
    param(
        "data",
        "any",
        None,
        "The first dataset, merged with `other` when `datasets` is absent.",
    ),
    INPUT_DATA,
    param(
        "other",
        "any",
        None,
        "The second dataset, merged with `data` when `datasets` is absent.",
    ),
    param(
        "right",
        "any",
        None,
        "Alias of `other`, used when `other` is absent.",
    ),
    FORMAT,
    INPUT_FORMAT,
    param(
        "merge_strategy",
        "string",
        None,
        "concat (stack rows) or join (on `join_on`); defaults to join when `join_on` is given, else concat.",
    ),
    param(
        "strategy",
        "string",
        None,
        "Alias of `merge_strategy`, used when `merge_strategy` is absent.",
    ),
    param(
        "join_on",
        "any",
        None,
        "A key field or a list of them to join on (required for a join).",
    ),
    param(
        "on",
        "any",
        None,
        "Alias of `join_on`, used when `join_on` is absent.",
    ),
    param(
        "join_type",
        "string",
        Some("\"inner\""),
        "The kind of join: inner, left, right or outer.",
    ),
    param(
        "how",
        "string",
        Some("\"inner\""),
        "Alias of `join_type`, used when `join_type` is absent.",
    ),
];

const VALIDATE: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    required(
        "schema",
        "any",
        "The JSON Schema: a map, or JSON text or a file path holding one.",
    ),
    param(
        "mode",
        "string",
        Some("\"strict\""),
        "strict (invalid data fails the step), lenient (also returns the valid data) or report_only.",
    ),
];

const INFER_SCHEMA: &[ParamDecl] = &[DATA, INPUT_DATA, FORMAT, INPUT_FORMAT];

const QUALITY_CHECK: &[ParamDecl] = &[
    DATA,
    INPUT_DATA,
    FORMAT,
    INPUT_FORMAT,
    param(
        "threshold",
        "number",
        Some("0.8"),
        "The lowest score (0 to 1) that passes.",
    ),
];

/// Every action of `data-processing` and `validation`, in the order of
/// [`DATA_PROCESSING_ACTIONS`](crate::DATA_PROCESSING_ACTIONS) then
/// [`VALIDATION_ACTIONS`](crate::VALIDATION_ACTIONS).
pub const ACTIONS: &[ActionDecl] = &[
    ActionDecl {
        tool: "data-processing",
        action: "convert",
        description: "Converts tabular data to JSON or CSV text.",
        params: CONVERT,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "data-processing",
        action: "filter",
        description: "Keeps the rows that match all criteria.",
        params: FILTER,
        one_of: &[DATA_GROUP, &["criteria", "operation"]],
    },
    ActionDecl {
        tool: "data-processing",
        action: "aggregate",
        description: "Groups rows and computes aggregations per group.",
        params: AGGREGATE,
        one_of: &[DATA_GROUP, &["group_by", "aggregations"]],
    },
    ActionDecl {
        tool: "data-processing",
        action: "transform",
        description: "Applies a list of steps (filter, aggregate, select, drop, rename, sort, limit, compute, deduplicate, cast, fill_missing, calculate) in order.",
        params: TRANSFORM,
        one_of: &[DATA_GROUP, &["operations", "operation"]],
    },
    ActionDecl {
        tool: "data-processing",
        action: "profile",
        description: "Describes each column: type, nulls, distinct values, min, max, mean.",
        params: PROFILE,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "data-processing",
        action: "pivot",
        description: "Reshapes rows into a table of index values by column values, each cell an aggregate.",
        params: PIVOT,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "data-processing",
        action: "clean",
        description: "Removes duplicates, handles missing values and removes outliers.",
        params: CLEAN,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "data-processing",
        action: "merge",
        description: "Concatenates or joins two or more datasets.",
        params: MERGE,
        one_of: &[&["datasets", "data", "input_data"]],
    },
    ActionDecl {
        tool: "validation",
        action: "validate",
        description: "Validates data (row by row for a table) against a JSON Schema.",
        params: VALIDATE,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "validation",
        action: "infer_schema",
        description: "Infers a JSON Schema (2020-12) from the data.",
        params: INFER_SCHEMA,
        one_of: &[DATA_GROUP],
    },
    ActionDecl {
        tool: "validation",
        action: "quality_check",
        description: "Scores completeness, uniqueness and consistency of a table.",
        params: QUALITY_CHECK,
        one_of: &[DATA_GROUP],
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{ACTIONS, ActionDecl};
    use crate::{DATA_PROCESSING_ACTIONS, VALIDATION_ACTIONS, data_processing, validation};
    use serde_json::{Map, Value, json};
    use std::collections::HashSet;

    const KINDS: &[&str] = &[
        "string", "number", "integer", "boolean", "list", "mapping", "any",
    ];

    fn decl(action: &str) -> &'static ActionDecl {
        ACTIONS.iter().find(|a| a.action == action).unwrap()
    }

    /// Runs `action` through the public entry point of its tool, after
    /// checking that every parameter given is declared and every required
    /// one is given.
    fn call(action: &str, params: &Value) -> Result<Value, crate::ToolFailure> {
        let d = decl(action);
        let params: Map<String, Value> = params.as_object().cloned().unwrap();
        for key in params.keys() {
            assert!(
                d.params.iter().any(|p| p.name == key),
                "{action}: `{key}` is not declared"
            );
        }
        for p in d.params.iter().filter(|p| p.required) {
            assert!(
                params.contains_key(p.name),
                "{action}: required `{}` not given",
                p.name
            );
        }
        match d.tool {
            "data-processing" => data_processing(action, &params),
            "validation" => validation(action, &params),
            other => panic!("unknown tool {other}"),
        }
    }

    fn rows() -> Value {
        json!([
            {"id": 1, "region": "west", "amount": 10},
            {"id": 2, "region": "east", "amount": 5},
            {"id": 2, "region": "east", "amount": 5},
        ])
    }

    #[test]
    fn every_action_is_declared_once_with_its_tool() {
        let expected: Vec<(&str, &str)> = DATA_PROCESSING_ACTIONS
            .iter()
            .map(|a| ("data-processing", *a))
            .chain(VALIDATION_ACTIONS.iter().map(|a| ("validation", *a)))
            .collect();
        let declared: Vec<(&str, &str)> = ACTIONS.iter().map(|a| (a.tool, a.action)).collect();
        assert_eq!(declared, expected);
    }

    #[test]
    fn kinds_are_known_and_names_unique() {
        for a in ACTIONS {
            assert!(!a.description.is_empty(), "{}", a.action);
            let mut seen = HashSet::new();
            for p in a.params {
                assert!(
                    KINDS.contains(&p.kind),
                    "{}.{}: kind {}",
                    a.action,
                    p.name,
                    p.kind
                );
                assert!(seen.insert(p.name), "{}: `{}` twice", a.action, p.name);
                assert!(!p.description.is_empty(), "{}.{}", a.action, p.name);
                assert!(
                    !(p.required && p.default.is_some()),
                    "{}.{}: required with a default",
                    a.action,
                    p.name
                );
            }
        }
    }

    #[test]
    fn declared_defaults_parse_as_json() {
        for a in ACTIONS {
            for p in a.params {
                if let Some(d) = p.default {
                    serde_json::from_str::<Value>(d)
                        .unwrap_or_else(|e| panic!("{}.{}: {d}: {e}", a.action, p.name));
                }
            }
        }
    }

    #[test]
    fn minimal_declared_parameters_suffice() {
        let data = rows();
        let cases = [
            ("convert", json!({"data": data, "output_format": "csv"})),
            (
                "filter",
                json!({"data": data, "criteria": {"region": "east"}}),
            ),
            ("aggregate", json!({"data": data, "group_by": "region"})),
            (
                "transform",
                json!({"data": data, "operations": [{"type": "limit", "n": 1}]}),
            ),
            ("profile", json!({"data": data})),
            (
                "pivot",
                json!({"data": data, "index": "region", "values": "amount"}),
            ),
            ("clean", json!({"data": data})),
            ("merge", json!({"datasets": [data, data]})),
            (
                "validate",
                json!({"data": data, "schema": {"type": "object"}}),
            ),
            ("infer_schema", json!({"data": data})),
            ("quality_check", json!({"data": data})),
        ];
        assert_eq!(cases.len(), ACTIONS.len());
        for (action, params) in &cases {
            call(action, params).unwrap_or_else(|e| panic!("{action}: {e}"));
        }
    }

    #[test]
    fn every_declared_parameter_is_accepted() {
        let data = rows();
        let csv = "id,region,amount\n1,west,10\n2,east,5\n";
        let cases = [
            (
                "convert",
                json!({"input_data": csv, "input_format": "csv", "output_format": "json"}),
            ),
            (
                "filter",
                json!({"input_data": csv, "format": "csv", "operation": {"criteria": {"amount": {"gt": 6}}}}),
            ),
            (
                "aggregate",
                json!({"data": data, "group_by": ["region"], "aggregations": {"total": "sum:amount"}}),
            ),
            (
                "transform",
                json!({"input_data": data, "operations": [{"type": "select", "fields": ["id"]}]}),
            ),
            ("profile", json!({"input_data": csv, "input_format": "csv"})),
            (
                "clean",
                json!({"data": data, "remove_duplicates": false, "handle_missing": "fill",
                       "fill_value": 0, "remove_outliers": true}),
            ),
            (
                "merge",
                json!({"data": data, "other": [{"id": 1, "x": "a"}], "merge_strategy": "join",
                       "join_on": "id", "join_type": "left"}),
            ),
            (
                "validate",
                json!({"input_data": data, "schema": "{\"type\": \"object\"}", "mode": "lenient"}),
            ),
            ("infer_schema", json!({"input_data": csv, "format": "csv"})),
            ("quality_check", json!({"data": data, "threshold": 0.5})),
        ];
        for (action, params) in &cases {
            call(action, params).unwrap_or_else(|e| panic!("{action}: {e}"));
        }
        // The merge aliases.
        call(
            "merge",
            &json!({"input_data": data, "right": [{"id": 1, "x": "a"}], "strategy": "join",
                    "on": ["id"], "how": "outer"}),
        )
        .unwrap();
    }

    #[test]
    fn every_alias_is_declared() {
        let data_aliases: &[&[&str]] = &[&["data", "input_data"], &["format", "input_format"]];
        for a in ACTIONS {
            for group in data_aliases {
                for name in *group {
                    assert!(
                        a.params.iter().any(|p| p.name == *name),
                        "{}: `{name}` not declared",
                        a.action
                    );
                }
            }
        }
        let specific: &[(&str, &[&str])] = &[
            ("filter", &["criteria", "operation"]),
            ("aggregate", &["group_by", "aggregations"]),
            ("merge", &["datasets", "other", "right"]),
            ("merge", &["merge_strategy", "strategy"]),
            ("merge", &["join_on", "on"]),
            ("merge", &["join_type", "how"]),
        ];
        for (action, names) in specific {
            let d = decl(action);
            for name in *names {
                let p = d.params.iter().find(|p| p.name == *name);
                let p = p.unwrap_or_else(|| panic!("{action}: `{name}` not declared"));
                // Alternatives are never required on their own.
                assert!(!p.required, "{action}: `{name}` must not be required");
            }
        }
    }

    #[test]
    fn every_alternative_is_declared_and_optional() {
        for a in ACTIONS {
            for group in a.one_of {
                for name in *group {
                    let p = a.params.iter().find(|p| p.name == *name);
                    assert!(p.is_some_and(|p| !p.required), "{}: `{name}`", a.action);
                }
            }
        }
        // Without its data, each action fails.
        for a in ACTIONS
            .iter()
            .filter(|a| a.one_of.contains(&super::DATA_GROUP))
        {
            let call = if a.tool == "validation" {
                validation(a.action, &Map::new())
            } else {
                data_processing(a.action, &Map::new())
            };
            assert!(call.is_err(), "{} without data", a.action);
        }
    }

    #[test]
    fn alternatives_are_really_needed() {
        // Each action fails without any of its alternatives, as the
        // descriptions say.
        let data = rows();
        assert!(data_processing("profile", &Map::new()).is_err());
        let filter = json!({"data": data});
        assert!(data_processing("filter", filter.as_object().unwrap()).is_err());
        let aggregate = json!({"data": data});
        assert!(data_processing("aggregate", aggregate.as_object().unwrap()).is_err());
        let merge = json!({"data": data});
        assert!(data_processing("merge", merge.as_object().unwrap()).is_err());
    }
}
