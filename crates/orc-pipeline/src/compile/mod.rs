//! The compiler: pipeline text to [`Plan`], running every check and reporting every problem.

mod auto;
mod bindings;
mod catalog;
mod draft;
mod inputs;
mod model;
mod outputs;
mod read;
mod recovery;
mod resolve;

use std::sync::Arc;

use crate::auto::{AutoResolver, Protected};
use crate::diag::{Code, Diagnostic, Diagnostics, Severity, did_you_mean};
use crate::expr::ExprSet;
use crate::plan::{Input, Param, Plan};
use crate::templates::TemplateSet;
use crate::yaml::{self, Kind, Node, Pos};

pub(crate) use crate::yaml::literal_bool;
pub use read::MAX_TIMEOUT_SECS;
pub(crate) use read::valid_id;
pub use resolve::GLOBALS as TEMPLATE_GLOBALS;

pub use catalog::{ActionSpec, ParamSpec, ParamType, ToolSpec};
use draft::Drafter;
use read::Reader;
use resolve::Resolver;

/// The tools, actions and models the compiler accepts, supplied by the engine that implements them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tools: Vec<ToolSpec>,
    models: Vec<String>,
    /// The parameters of the tool-less model actions (`generate`, …), where declared.
    model_actions: Vec<(String, Vec<String>)>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// Adds a tool and its actions, whose parameters are not declared (not checked).
    pub fn with_tool(self, tool: &str, actions: &[&str]) -> Self {
        self.with_spec(ToolSpec {
            name: tool.to_owned(),
            description: String::new(),
            actions: actions.iter().map(|a| ActionSpec::undeclared(a)).collect(),
        })
    }

    /// Adds a tool with its actions and their declared parameters, which the compiler checks
    /// every step against.
    pub fn with_spec(mut self, spec: ToolSpec) -> Self {
        self.tools.retain(|t| t.name != spec.name);
        self.tools.push(spec);
        self
    }

    /// The tool called `name`.
    pub fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Every tool, in the order they were added.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// The actions of a tool, if the tool exists.
    pub fn actions(&self, tool: &str) -> Option<Vec<&str>> {
        self.tool(tool)
            .map(|t| t.actions.iter().map(|a| a.name.as_str()).collect())
    }

    /// Every tool's name.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|t| t.name.as_str())
    }

    /// Adds the model references the configuration accepts (names and `provider:name`
    /// spellings). With none, model steps do not compile (E016).
    pub fn with_models(mut self, refs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for r in refs {
            let r = r.into();
            if !self.models.contains(&r) {
                self.models.push(r);
            }
        }
        self
    }

    /// The model references a step or pipeline may name.
    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// Declares the parameters a tool-less model action takes: a step's other parameters are
    /// errors (`E022`) when it compiles, as the model layer would refuse them when it runs.
    pub fn with_model_action(mut self, action: &str, parameters: &[&str]) -> Self {
        self.model_actions.retain(|(a, _)| a != action);
        self.model_actions.push((
            action.to_owned(),
            parameters.iter().map(|p| (*p).to_owned()).collect(),
        ));
        self
    }

    /// The parameters a model action takes, when declared.
    pub fn model_action_parameters(&self, action: &str) -> Option<&[String]> {
        self.model_actions
            .iter()
            .find(|(a, _)| a == action)
            .map(|(_, p)| p.as_slice())
    }
}

/// A compiled pipeline: the serializable plan (what the compile cache stores), its executable
/// form (templates compiled, condition expressions parsed, each once), and the findings that
/// did not stop it.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The plan.
    pub plan: Arc<Plan>,
    /// The plan's templates, compiled.
    pub templates: Arc<TemplateSet>,
    /// The plan's condition expressions, parsed.
    pub exprs: Arc<ExprSet>,
    /// Warnings and notes.
    pub findings: Diagnostics,
}

impl Compiled {
    /// Rebuilds the executable form of a plan loaded from the compile cache; `None` when a
    /// template or an expression of it does not compile (an entry that is not this orc's).
    pub fn from_plan(plan: Plan, findings: Diagnostics) -> Option<Compiled> {
        let templates = TemplateSet::compile(plan.templates.clone().into()).ok()?;
        let exprs = ExprSet::parse(&plan.exprs).ok()?;
        Some(Compiled {
            plan: Arc::new(plan),
            templates: Arc::new(templates),
            exprs: Arc::new(exprs),
            findings,
        })
    }
}

/// The largest pipeline file orc reads.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024 * 1024;

const TOP_KEYS: &[&str] = &[
    "name",
    "steps",
    "id",
    "version",
    "description",
    "parameters",
    "inputs",
    "outputs",
    "metadata",
    "model",
    "budget",
    "extra_inputs",
    "enhanced_outputs",
];

/// Compiles raw bytes: refuses text that is not UTF-8 or is too large, then [`compile`]s it.
pub fn compile_bytes(bytes: &[u8], catalog: &Catalog) -> Result<Compiled, Diagnostics> {
    compile_bytes_with(bytes, catalog, None)
}

/// [`compile_bytes`] with a resolver for AUTO tags, as [`compile_with`].
pub fn compile_bytes_with(
    bytes: &[u8],
    catalog: &Catalog,
    resolver: Option<&dyn AutoResolver>,
) -> Result<Compiled, Diagnostics> {
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(one(Diagnostic::new(
            Code::E001,
            Pos::default(),
            format!(
                "the file is {} bytes; orc reads pipelines of at most {MAX_SOURCE_BYTES} bytes",
                bytes.len()
            ),
        )));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => compile_with(text, catalog, resolver),
        Err(e) => {
            let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            // Columns count characters, as everywhere else.
            let col = good.chars().rev().take_while(|&c| c != '\n').count() + 1;
            Err(one(Diagnostic::new(
                Code::E001,
                Pos {
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    col: u32::try_from(col).unwrap_or(u32::MAX),
                },
                "the file is not valid UTF-8 text",
            )
            .hint("save the pipeline as UTF-8")))
        }
    }
}

fn one(d: Diagnostic) -> Diagnostics {
    Diagnostics(vec![d])
}

/// Compiles pipeline text. On success the findings hold only warnings and notes; on failure, every error found.
///
/// AUTO tags are refused (E019) outside a step's `action`: use [`compile_with`] to answer them.
pub fn compile(text: &str, catalog: &Catalog) -> Result<Compiled, Diagnostics> {
    compile_with(text, catalog, None)
}

/// Compiles pipeline text, answering its `<AUTO>…</AUTO>` tags through `resolver`.
///
/// Each distinct question (instruction, attributes, expected type) is asked once. A tag in a
/// tool-less step's `action` is not asked: the step becomes a `generate` step with the tag's
/// text as its prompt. Without a resolver, any other tag is an error (E019).
pub fn compile_with(
    text: &str,
    catalog: &Catalog,
    resolver: Option<&dyn AutoResolver>,
) -> Result<Compiled, Diagnostics> {
    let mut diags = Diagnostics::default();
    let protected = Protected::new(text, &mut diags);
    let (mut doc, duplicates) = match yaml::parse_lenient(&protected.text) {
        Ok(parsed) => parsed,
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    Code::E001,
                    protected.original_pos(e.pos),
                    format!("invalid YAML: {}", e.message),
                )
                .hint("check the indentation and quoting near this line"),
            );
            diags.sort();
            return Err(diags);
        }
    };
    // Where tags are malformed or got no answer (reported): the checks that follow would
    // only complain again about the tag text left there.
    let mut unanswered: Vec<Pos> = diags.0.iter().map(|d| d.pos).collect();
    for d in duplicates {
        diags.push(
            Diagnostic::new(
                Code::W103,
                protected.original_pos(d.again),
                format!(
                    "key `{}` is written twice in one mapping (first at line {}): this later value is used",
                    d.name,
                    protected.original_pos(d.first).line
                ),
            )
            .hint("remove one of the two; py-orc's parser also kept the later value"),
        );
    }
    if !protected.tags.is_empty() {
        protected.restore_tree(&mut doc);
        let mut answerer = auto::Answerer::new(&protected, catalog, resolver, &mut diags);
        answerer.run(&mut doc);
        unanswered.append(&mut answerer.failed);
    }
    let plan = build(&doc, text, catalog, &mut diags);
    if !unanswered.is_empty() {
        diags.0.retain(|d| {
            matches!(
                d.code,
                Code::E019 | Code::E020 | Code::E021 | Code::I202 | Code::I203 | Code::I204
            ) || !unanswered.contains(&d.pos)
        });
    }
    diags.sort();
    match plan {
        Some((plan, templates, exprs)) if !diags.has_errors() => Ok(Compiled {
            plan: Arc::new(plan),
            templates: Arc::new(templates),
            exprs: Arc::new(exprs),
            findings: diags,
        }),
        _ => {
            diags.0.retain(|d| d.severity != Severity::Info);
            Err(diags)
        }
    }
}

fn build(
    doc: &Node,
    source: &str,
    catalog: &Catalog,
    diags: &mut Diagnostics,
) -> Option<(Plan, TemplateSet, ExprSet)> {
    let Kind::Map(entries) = &doc.kind else {
        diags.push(
            Diagnostic::new(
                Code::E003,
                doc.pos,
                format!("a pipeline must be a mapping, not {}", doc.type_name()),
            )
            .hint("start with `name:` and `steps:`"),
        );
        return None;
    };
    let mut r = Reader { diags, step: None };
    for (key, _) in entries {
        if TOP_KEYS.contains(&key.name.as_str()) {
            continue;
        }
        let hint = match key.name.as_str() {
            "context" | "config" | "resources" | "error_handling" => {
                "the earlier system ignored this key; orc reads settings from its config file"
                    .to_string()
            }
            k => did_you_mean(k, TOP_KEYS.iter().copied()).map_or_else(
                || format!("the top-level keys are: {}", TOP_KEYS.join(", ")),
                |s| format!("did you mean `{s}`?"),
            ),
        };
        r.report(
            Diagnostic::new(
                Code::E013,
                key.pos,
                format!("orc does not support the top-level key `{}`", key.name),
            )
            .field(&key.name)
            .hint(hint),
        );
    }

    let name = match doc.get("name") {
        Some(n) => match r.scalar_text(n, "name") {
            Some(s) if s.trim().is_empty() => {
                r.report(Diagnostic::new(Code::E002, n.pos, "`name` is empty").field("name"));
                None
            }
            other => other,
        },
        None => {
            r.report(
                Diagnostic::new(Code::E002, doc.pos, "the pipeline has no `name`")
                    .field("name")
                    .hint("add `name: My pipeline` at the top"),
            );
            None
        }
    };
    let id = match doc.get("id") {
        Some(n) => r.scalar_text(n, "id").inspect(|id| {
            if !valid_id(id) {
                r.report(
                    Diagnostic::new(
                        Code::E005,
                        n.pos,
                        format!("pipeline id `{id}` is not a valid id"),
                    )
                    .field("id")
                    .hint("ids start with a letter and contain only letters, digits, `_` and `-`"),
                );
            }
        }),
        None => name.as_ref().map(|n| {
            let id: String = n
                .trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if id.is_empty() { "unnamed".into() } else { id }
        }),
    };
    let version = match doc.get("version") {
        Some(n) => match &n.kind {
            Kind::Str(v) if is_semver(v) => v.clone(),
            Kind::Str(v) => {
                r.report(
                    Diagnostic::new(
                        Code::E014,
                        n.pos,
                        format!("`version` must look like `1.2.3`, not `{v}`"),
                    )
                    .field("version"),
                );
                String::new()
            }
            _ => {
                r.report(
                    Diagnostic::new(
                        Code::E003,
                        n.pos,
                        format!(
                            "`version` must be a string like \"1.0.0\", not {}",
                            n.type_name()
                        ),
                    )
                    .field("version")
                    .hint("quote it: `version: \"1.0.0\"`"),
                );
                String::new()
            }
        },
        None => "1.0.0".into(),
    };
    if let Some(n) = doc.get("description")
        && !matches!(n.kind, Kind::Str(_) | Kind::Null)
    {
        r.wrong_type(n, "description", "a string");
    }
    let mut default_timeout = None;
    if let Some(n) = doc.get("metadata") {
        match &n.kind {
            Kind::Map(_) => {
                default_timeout = n
                    .get("default_timeout")
                    .and_then(|t| r.seconds(t, "metadata.default_timeout"));
            }
            Kind::Null => {}
            _ => r.wrong_type(n, "metadata", "a mapping"),
        }
    }
    let budget = doc.get("budget").and_then(|n| r.usd(n, "budget"));
    let extra_inputs = doc
        .get("extra_inputs")
        .and_then(|n| r.boolean(n, "extra_inputs"))
        .unwrap_or(false);
    let model = doc.get("model").and_then(|n| {
        let name = r.string(n, "model")?;
        model::check_name(&mut r, catalog, &name, n.pos, "model", false)
    });

    let mut drafter = Drafter::new(catalog, source);
    for key in ["name", "description", "metadata"] {
        if let Some(n) = doc.get(key) {
            drafter.inert(&mut r, n, key);
        }
    }
    let mut inputs: Vec<Input> = Vec::new();
    for key in ["inputs", "parameters"] {
        if let Some(n) = doc.get(key) {
            inputs::read(&mut r, n, key, &mut inputs);
        }
    }

    let (outputs, output_uses, output_specs) = outputs::read(&mut r, &mut drafter, doc);

    let drafts = match doc.get("steps") {
        Some(n) => drafter.steps(&mut r, n, "steps"),
        None => {
            r.report(
                Diagnostic::new(Code::E002, doc.pos, "the pipeline has no `steps`")
                    .field("steps")
                    .hint("add a `steps:` list"),
            );
            Vec::new()
        }
    };
    check_duplicates(&mut r, &drafts);

    let templates = match TemplateSet::compile(drafter.templates.clone().into()) {
        Ok(t) => t,
        Err(errors) => {
            // Reported, then left out (as empty text) so the checks that follow still run.
            let mut sources = drafter.templates.clone();
            for e in errors {
                if let Some(src) = sources.get_mut(e.index) {
                    src.clear();
                }
                let (pos, step, field) = drafter.template_sites[e.index].clone();
                let mut d = Diagnostic::new(Code::E010, pos, format!("template does not parse: {}", e.message))
                    .field(field)
                    .hint("templates use Jinja syntax: `{{ name }}`, `{{ x | upper }}`, `{% if … %}…{% endif %}`");
                if let Some(s) = step {
                    d = d.step(s);
                }
                r.report(d);
            }
            TemplateSet::compile(sources.into()).ok()?
        }
    };
    let mut unknown_functions = Vec::new();
    for (i, (pos, step, field)) in drafter.template_sites.iter().enumerate() {
        let id = crate::plan::TemplateId(u32::try_from(i).unwrap_or(u32::MAX));
        if let Some(message) = templates.unknown_callable(id) {
            unknown_functions.extend(templates.unknown_function(id).map(|f| (id, f)));
            let mut d = Diagnostic::new(Code::E017, *pos, message)
                .field(field.clone())
                .hint("see the README for orc's filters; minijinja's built-in filters work too");
            if let Some(s) = step {
                d = d.step(s.clone());
            }
            r.report(d);
        }
    }

    let input_names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let top_ids: Vec<String> = drafts.iter().map(|d| d.id.clone()).collect();
    let output_check = resolve::LevelIds::new(&drafts);
    let mut unresolved_outputs = Vec::new();
    let lines = resolve::SourceLines::new(source);
    let mut resolver = Resolver {
        diags: r.diags,
        templates: &templates,
        source: &lines,
        unknown_functions,
    };
    for site in &output_uses {
        if let draft::Use::Template(id) = &site.what {
            for n in templates.names(*id) {
                let root = n.split('.').next().unwrap_or(&n).to_string();
                if output_check.find(&root).is_none()
                    && !templates.is_global(&root)
                    && !resolver.unknown_functions.contains(&(*id, root.clone()))
                {
                    unresolved_outputs.push((root, site.pos, site.field.clone()));
                }
            }
        }
    }
    let (steps, unresolved) = resolver.level(drafts, &[]);
    let mut known: Vec<&str> = input_names.iter().map(String::as_str).collect();
    known.extend_from_slice(TEMPLATE_GLOBALS);
    let suggest_pool: Vec<&str> = known
        .iter()
        .copied()
        .chain(top_ids.iter().map(String::as_str))
        .collect();
    resolver.report_unresolved(unresolved, &known);
    for (name, pos, field) in unresolved_outputs {
        if known.contains(&name.as_str()) {
            continue;
        }
        let mut d = Diagnostic::new(
            Code::E011,
            resolve::locate(&lines, pos, &name, true),
            format!("`{name}` is not defined: no input or step has that name"),
        )
        .field(field);
        if let Some(s) = did_you_mean(&name, suggest_pool.iter().copied()) {
            d = d.hint(format!("did you mean `{s}`?"));
        }
        resolver.diags.push(d);
    }

    let plan = Plan {
        id: id?,
        name: name?,
        version,
        inputs,
        extra_inputs,
        outputs,
        model,
        default_timeout,
        budget,
        steps,
        templates: drafter.templates,
        exprs: drafter.exprs,
        output_specs,
    };
    Some((plan, templates, ExprSet::from_parsed(drafter.parsed_exprs)))
}

fn is_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn check_duplicates(r: &mut Reader<'_>, drafts: &[draft::Draft]) {
    let mut seen: std::collections::HashMap<&str, Pos> = std::collections::HashMap::new();
    for d in drafts {
        if let Some(first) = seen.insert(d.id.as_str(), d.id_pos) {
            r.report(
                Diagnostic::new(
                    Code::E004,
                    d.id_pos,
                    format!("step id `{}` is used twice", d.id),
                )
                .step(&d.id)
                .field("id")
                .hint(format!(
                    "the first is at line {}; step ids must be unique",
                    first.line
                )),
            );
        }
        let body = match &d.kind {
            draft::DraftKind::ForEach { body, .. } | draft::DraftKind::While { body, .. } => {
                Some(body)
            }
            draft::DraftKind::Action { .. } => None,
        };
        if let Some(body) = body {
            check_duplicates(r, body);
        }
    }
}

/// Whether a parameter tree holds any template.
pub fn has_template(p: &Param) -> bool {
    match p {
        Param::Lit(_) => false,
        Param::Tmpl(_) => true,
        Param::List(items) => items.iter().any(has_template),
        Param::Map(entries) => entries.iter().any(|(_, v)| has_template(v)),
    }
}
