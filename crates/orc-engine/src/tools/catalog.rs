//! The built-in tools' declarations: every action and the parameters it reads, in one place.
//! The compiler checks each step against them, and `orc tools` prints them.

use orc_pipeline::{ActionSpec, Catalog, ParamSpec, ParamType, ToolSpec};

/// `(name, type, required, default, description)`.
type Param = (
    &'static str,
    ParamType,
    bool,
    Option<&'static str>,
    &'static str,
);

fn action(name: &str, description: &str, params: &[Param]) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        params: Some(
            params
                .iter()
                .map(|&(name, ty, required, default, description)| ParamSpec {
                    name: name.to_owned(),
                    ty,
                    required,
                    default: default.map(str::to_owned),
                    description: description.to_owned(),
                })
                .collect(),
        ),
        one_of: Vec::new(),
    }
}

fn tool(name: &str, description: &str, actions: Vec<ActionSpec>) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        actions,
    }
}

use ParamType::{Integer, Number, String as Text};

const PATH: Param = (
    "path",
    Text,
    true,
    None,
    "the file or directory (relative to the working directory)",
);

const TIMEOUT: Param = (
    "timeout",
    Number,
    false,
    Some("30"),
    "seconds before the command's whole process tree is killed",
);

const MAX_OUTPUT: Param = (
    "max_output_bytes",
    Integer,
    false,
    Some("1048576"),
    "bytes of stdout and of stderr kept; the rest is counted and dropped",
);

fn filesystem() -> ToolSpec {
    let destination: Param = (
        "destination",
        Text,
        false,
        None,
        "where it goes (required; `dest` is the same)",
    );
    let dest: Param = ("dest", Text, false, None, "the same as `destination`");
    tool(
        "filesystem",
        "Read, write, copy, move, delete and list files",
        vec![
            action("read", "The file's text: {content, size}", &[PATH]),
            action(
                "write",
                "Writes text atomically, creating parent directories: {path, size}",
                &[
                    PATH,
                    (
                        "content",
                        Text,
                        true,
                        None,
                        "the text to write (other values are written as JSON)",
                    ),
                ],
            ),
            action(
                "copy",
                "Copies a file or directory",
                &[PATH, destination, dest],
            ),
            action(
                "move",
                "Moves a file or directory",
                &[PATH, destination, dest],
            ),
            action("delete", "Deletes a file or a directory tree", &[PATH]),
            action("list", "A directory's entries: {items, count}", &[PATH]),
            action("exists", "Whether the path exists: {exists, type}", &[PATH]),
            action(
                "mkdir",
                "Creates the directory and its parents: {created}",
                &[PATH],
            ),
        ],
    )
}

fn terminal() -> ToolSpec {
    tool(
        "terminal",
        "Runs a shell command",
        vec![action(
            "execute",
            "`sh -c COMMAND`: {stdout, stderr, return_code, timed_out, truncated}",
            &[
                ("command", Text, true, None, "the shell command"),
                (
                    "working_dir",
                    Text,
                    false,
                    Some("\".\""),
                    "the directory it runs in",
                ),
                TIMEOUT,
                MAX_OUTPUT,
            ],
        )],
    )
}

fn python() -> ToolSpec {
    let params: &[Param] = &[
        (
            "code",
            Text,
            true,
            None,
            "Python source, run by `python3 -`",
        ),
        TIMEOUT,
        MAX_OUTPUT,
    ];
    tool(
        "python-executor",
        "Runs Python code with python3 (not sandboxed)",
        vec![
            action(
                "execute",
                "Runs the code: {stdout, stderr, return_code, timed_out, truncated}",
                params,
            ),
            action("run", "The same as `execute`", params),
        ],
    )
}

fn echo() -> ToolSpec {
    tool(
        "echo",
        "Returns its message (also a tool-less action)",
        vec![action(
            "echo",
            "The message, as the step's result",
            &[
                ("message", Text, false, None, "the text to return"),
                ("text", Text, false, None, "the same as `message`"),
            ],
        )],
    )
}

/// `data-processing` and `validation`, as orc-data declares them.
fn data_tools() -> Vec<ToolSpec> {
    let mut tools: Vec<ToolSpec> = Vec::new();
    for decl in orc_data::ACTIONS {
        let spec = ActionSpec {
            name: decl.action.to_owned(),
            description: decl.description.to_owned(),
            params: Some(
                decl.params
                    .iter()
                    .map(|p| ParamSpec {
                        name: p.name.to_owned(),
                        ty: ParamType::parse(p.kind).unwrap_or(ParamType::Any),
                        required: p.required,
                        default: p.default.map(str::to_owned),
                        description: p.description.to_owned(),
                    })
                    .collect(),
            ),
            one_of: decl
                .one_of
                .iter()
                .map(|g| g.iter().map(|n| (*n).to_owned()).collect())
                .collect(),
        };
        match tools.iter_mut().find(|t| t.name == decl.tool) {
            Some(t) => t.actions.push(spec),
            None => tools.push(tool(
                decl.tool,
                match decl.tool {
                    "validation" => "Checks data against a JSON Schema, infers schemas, scores quality",
                    _ => "Converts, filters, aggregates, transforms, cleans and merges tables (CSV, JSON)",
                },
                vec![spec],
            )),
        }
    }
    tools
}

/// The tools and actions orc implements, with their parameters, for the compiler's checks
/// and `orc tools`.
pub fn catalog() -> Catalog {
    let mut catalog = Catalog::new()
        .with_spec(filesystem())
        .with_spec(terminal())
        .with_spec(python())
        .with_spec(echo());
    for t in data_tools() {
        catalog = catalog.with_spec(t);
    }
    catalog
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_action_the_tools_run_is_declared() {
        let c = catalog();
        assert_eq!(
            c.actions("filesystem").unwrap(),
            super::super::filesystem::ACTIONS
        );
        for (tool, actions) in [
            ("data-processing", orc_data::DATA_PROCESSING_ACTIONS),
            ("validation", orc_data::VALIDATION_ACTIONS),
        ] {
            assert_eq!(c.actions(tool).unwrap(), actions, "{tool}");
        }
        for t in c.tools() {
            assert!(!t.description.is_empty(), "{}", t.name);
            for a in &t.actions {
                let params = a.params.as_ref().unwrap();
                assert!(!a.description.is_empty(), "{}.{}", t.name, a.name);
                let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(
                    names.len(),
                    params.len(),
                    "{}.{}: a name twice",
                    t.name,
                    a.name
                );
            }
        }
    }
}
