//! Templates: minijinja with orc's filters, compiled once per plan, plus a fast path for
//! the common `{{ name.attr.attr }}` form that skips the template machine entirely.

pub mod filters;

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Environment, ErrorKind};

use crate::plan::TemplateId;

/// Converts any serializable value (JSON, most often) to a template value.
pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// Where a template looks up the names it uses.
pub trait Lookup: Send + Sync {
    /// The value bound to a root name, if any.
    fn lookup(&self, name: &str) -> Option<Value>;
}

/// A template that could not be rendered, with the name it could not resolve when that was the cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    /// What went wrong, naming the missing variable where there is one.
    pub message: String,
}

/// Whether a string is a template (has `{{`, `{%` or `{#`).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// One piece of a fast-path template.
#[derive(Debug, Clone)]
enum Seg {
    Text(String),
    /// A root name and attribute names: `{{ a.b.c }}`.
    Path(Vec<String>),
}

#[derive(Debug)]
enum Compiled {
    Fast(Vec<Seg>),
    Jinja(String),
}

/// A template that is one `{{ expression }}` with nothing around it: what [`TemplateSet::evaluate`]
/// needs to give its value, found once when the set is compiled.
#[derive(Debug)]
struct Single {
    /// The expression between the braces.
    inner: Box<str>,
    /// The template that captures the expression's value, when that form compiled.
    capture: Option<Box<str>>,
}

/// Parses the `{{ a.b.c }}` subset: text plus bare dotted paths, nothing else.
fn parse_fast(src: &str) -> Option<Vec<Seg>> {
    if src.contains("{%") || src.contains("{#") || src.contains("%}") || src.contains("#}") {
        return None;
    }
    let mut segs = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            segs.push(Seg::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        if after.starts_with('-') {
            return None; // whitespace control
        }
        let end = after.find("}}")?;
        let inner = &after[..end];
        if inner.ends_with('-') {
            return None;
        }
        let path: Vec<String> = inner.trim().split('.').map(str::to_string).collect();
        let ident = |s: &String| {
            let mut chars = s.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !matches!(
                    s.as_str(),
                    "true"
                        | "false"
                        | "none"
                        | "True"
                        | "False"
                        | "None"
                        | "and"
                        | "or"
                        | "not"
                        | "in"
                        | "is"
                        | "if"
                        | "else"
                )
        };
        if path.is_empty() || !path.iter().all(ident) {
            return None;
        }
        segs.push(Seg::Path(path));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        segs.push(Seg::Text(rest.to_string()));
    }
    Some(segs)
}

/// Every template of a plan, compiled, ready to render many times from many threads.
#[derive(Debug)]
pub struct TemplateSet {
    env: Environment<'static>,
    compiled: Vec<Compiled>,
    /// For each template, its expression when it is a lone `{{ expression }}`.
    singles: Vec<Option<Single>>,
    sources: Arc<[String]>,
    /// A lenient environment for dry renders at compile time, built on first use.
    probe_env: std::sync::OnceLock<Environment<'static>>,
}

/// A template that failed to compile: its index and the error.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// Which template.
    pub index: usize,
    /// The parser's message.
    pub message: String,
    /// 1-based line within the template.
    pub line: usize,
}

/// A fresh environment with orc's filters and settings.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    filters::configure(&mut env);
    env.set_unknown_method_callback(filters::unknown_method);
    env
}

impl TemplateSet {
    /// Compiles every source; fails with the errors of all that do not compile.
    pub fn compile(sources: Arc<[String]>) -> Result<TemplateSet, Vec<CompileError>> {
        let mut env = environment();
        let mut compiled = Vec::with_capacity(sources.len());
        let mut singles = Vec::with_capacity(sources.len());
        let mut errors = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            let inner = single_expression(src.trim());
            if let Some(segs) = parse_fast(src) {
                compiled.push(Compiled::Fast(segs));
                singles.push(inner.map(|inner| Single {
                    inner: inner.into(),
                    capture: None,
                }));
                continue;
            }
            let name = format!("t{i}");
            match env.add_template_owned(name.clone(), src.clone()) {
                Ok(()) => {
                    // A lone `{{ expr }}` also gets a form that keeps the value, for `evaluate`.
                    // Should that form not compile, `evaluate` compiles the expression itself.
                    singles.push(inner.map(|inner| {
                        let capture_name = format!("{name}v");
                        let capture = format!("{{% set {VALUE_NAME} = ({inner}) %}}");
                        Single {
                            inner: inner.into(),
                            capture: env
                                .add_template_owned(capture_name.clone(), capture)
                                .ok()
                                .map(|()| capture_name.into()),
                        }
                    }));
                    compiled.push(Compiled::Jinja(name));
                }
                Err(e) => {
                    errors.push(CompileError {
                        index: i,
                        message: e.detail().unwrap_or("syntax error").to_string(),
                        line: e.line().unwrap_or(1),
                    });
                    compiled.push(Compiled::Fast(Vec::new()));
                    singles.push(None);
                }
            }
        }
        if errors.is_empty() {
            Ok(TemplateSet {
                env,
                compiled,
                singles,
                sources,
                probe_env: std::sync::OnceLock::new(),
            })
        } else {
            Err(errors)
        }
    }

    /// The source text of a template.
    pub fn source(&self, id: TemplateId) -> &str {
        self.sources.get(id.0 as usize).map_or("", String::as_str)
    }

    /// The root names (and dotted paths) a template reads from its scope.
    pub fn names(&self, id: TemplateId) -> BTreeSet<String> {
        match self.compiled.get(id.0 as usize) {
            Some(Compiled::Fast(segs)) => segs
                .iter()
                .filter_map(|s| match s {
                    Seg::Path(p) => Some(p.join(".")),
                    Seg::Text(_) => None,
                })
                .collect(),
            Some(Compiled::Jinja(name)) => self
                .env
                .get_template(name)
                .map(|t| t.undeclared_variables(true).into_iter().collect())
                .unwrap_or_default(),
            None => BTreeSet::new(),
        }
    }

    /// For templates that need the template machine: the first unknown filter, test or function
    /// a dry render meets, as a message. Branches the dry render does not take are not seen.
    pub fn unknown_callable(&self, id: TemplateId) -> Option<String> {
        self.probe(id)
            .map(|e| describe(&e, self.source(id)).message)
    }

    /// The name of the unknown function [`TemplateSet::unknown_callable`] reports, when it is
    /// a function: a name called, not a variable read.
    pub(crate) fn unknown_function(&self, id: TemplateId) -> Option<String> {
        let e = self
            .probe(id)
            .filter(|e| e.kind() == ErrorKind::UnknownFunction)?;
        let call = e.range().and_then(|r| self.source(id).get(r))?.trim_start();
        let end = call
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(call.len());
        (end > 0).then(|| call[..end].to_string())
    }

    fn probe(&self, id: TemplateId) -> Option<minijinja::Error> {
        let Some(Compiled::Jinja(_)) = self.compiled.get(id.0 as usize) else {
            return None;
        };
        let probe = self.probe_env.get_or_init(|| {
            let mut env = environment();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
            env.set_fuel(Some(10_000));
            env
        });
        match probe.render_str(self.source(id), minijinja::context! {}) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction
                ) =>
            {
                Some(e)
            }
            _ => None,
        }
    }

    /// Whether `name` is one of the template engine's global functions (`range`, `dict`, …).
    pub(crate) fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(g, _)| g == name)
    }

    /// Renders a template against a scope.
    pub fn render(&self, id: TemplateId, scope: &Arc<dyn Lookup>) -> Result<String, RenderError> {
        match self.compiled.get(id.0 as usize) {
            Some(Compiled::Fast(segs)) => {
                let mut out = String::new();
                for seg in segs {
                    match seg {
                        Seg::Text(t) => out.push_str(t),
                        Seg::Path(path) => {
                            let v = resolve_path(scope.as_ref(), path)?;
                            out.push_str(&filters::py_str(&v));
                        }
                    }
                }
                Ok(out)
            }
            Some(Compiled::Jinja(name)) => {
                let tmpl = self.env.get_template(name).map_err(|e| RenderError {
                    message: e.to_string(),
                })?;
                let mut out = Bounded(Vec::new());
                tmpl.render_captured_to(scope_value(scope), &mut out)
                    .map_err(|e| match e.kind() {
                        ErrorKind::WriteFailure => RenderError {
                            message: format!(
                                "the rendered text is longer than {} MiB, the most one template may give",
                                MAX_RENDERED_BYTES >> 20
                            ),
                        },
                        _ => self.undefined_or(&e, id, scope),
                    })?;
                // The formatter writes only `str`s: the bytes are UTF-8.
                String::from_utf8(out.0).map_err(|e| RenderError {
                    message: e.to_string(),
                })
            }
            None => Err(RenderError {
                message: format!("no template {}", id.0),
            }),
        }
    }

    /// The error to report: the missing name when a name is missing, else minijinja's own message.
    fn undefined_or(
        &self,
        e: &minijinja::Error,
        id: TemplateId,
        scope: &Arc<dyn Lookup>,
    ) -> RenderError {
        if e.kind() == ErrorKind::UndefinedError
            && let Some(missing) = self.first_missing(id, scope.as_ref())
        {
            return missing;
        }
        describe(e, self.source(id))
    }

    /// The first name the template reads that the scope cannot resolve, as an error naming it.
    fn first_missing(&self, id: TemplateId, scope: &dyn Lookup) -> Option<RenderError> {
        self.names(id).into_iter().find_map(|name| {
            let path: Vec<String> = name.split('.').map(str::to_string).collect();
            resolve_path(scope, &path).err()
        })
    }

    /// Whether a template is one `{{ expression }}` with nothing around it (surrounding
    /// whitespace aside), decided when the set was compiled: [`TemplateSet::evaluate`] gives
    /// such a template's value, and any other's rendered text.
    pub fn is_single_expression(&self, id: TemplateId) -> bool {
        self.single(id).is_some()
    }

    fn single(&self, id: TemplateId) -> Option<&Single> {
        self.singles.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Evaluates a template that is one `{{ expression }}` to its value (a list stays a list);
    /// any other template renders to a string value.
    pub fn evaluate(&self, id: TemplateId, scope: &Arc<dyn Lookup>) -> Result<Value, RenderError> {
        let Some(single) = self.single(id) else {
            return self.render(id, scope).map(Value::from);
        };
        if let Some(Compiled::Fast(segs)) = self.compiled.get(id.0 as usize)
            && let [Seg::Path(path)] = segs.as_slice()
        {
            return resolve_path(scope.as_ref(), path);
        }
        let capture = single
            .capture
            .as_deref()
            .and_then(|name| self.env.get_template(name).ok());
        let v = match capture {
            Some(capture) => capture
                .render_captured(scope_value(scope))
                .map_err(|e| self.undefined_or(&e, id, scope))?
                .state()
                .lookup(VALUE_NAME)
                .unwrap_or_default(),
            None => self
                .env
                .compile_expression_owned(single.inner.to_string())
                .and_then(|expr| expr.eval(scope_value(scope)))
                .map_err(|e| self.undefined_or(&e, id, scope))?,
        };
        if v.is_undefined() {
            return Err(RenderError {
                message: format!("undefined value `{}`", single.inner.trim()),
            });
        }
        Ok(v)
    }
}

/// The most text one render may give: beyond it the render fails (and its step with it), so a
/// template cannot fill the memory of a service that renders others' pipelines. (The fuel
/// budget bounds the work and the data a render makes, this its output.)
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// A render's output, refused past [`MAX_RENDERED_BYTES`].
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(std::io::Error::other("the rendered text is too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The variable a value-capturing template stores its result in.
const VALUE_NAME: &str = "__orc_value";

/// `{{ expr }}` with nothing around it, returning `expr`.
fn single_expression(src: &str) -> Option<&str> {
    let inner = src.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner)
}

fn resolve_path(scope: &dyn Lookup, path: &[String]) -> Result<Value, RenderError> {
    let undefined = |upto: usize| RenderError {
        message: format!("undefined value `{}`", path[..upto].join(".")),
    };
    let Some((root, attrs)) = path.split_first() else {
        return Err(undefined(0));
    };
    let mut v = scope.lookup(root).ok_or_else(|| undefined(1))?;
    for (i, attr) in attrs.iter().enumerate() {
        v = v.get_attr(attr).map_err(|_| undefined(i + 2))?;
        if v.is_undefined() {
            return Err(undefined(i + 2));
        }
    }
    Ok(v)
}

/// A readable message for a minijinja error, naming the undefined expression when that is the cause.
fn describe(e: &minijinja::Error, source: &str) -> RenderError {
    let snippet = e
        .range()
        .and_then(|r| source.get(r))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let message = match (e.kind(), snippet) {
        (ErrorKind::UndefinedError, Some(s)) => format!("undefined value `{s}`"),
        (_, Some(s)) => format!("{} (in `{s}`)", e.detail().unwrap_or(&e.kind().to_string())),
        (_, None) => e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_string),
    };
    RenderError { message }
}

#[derive(Debug)]
struct ScopeObject(Arc<dyn Lookup>);

impl std::fmt::Debug for dyn Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<scope>")
    }
}

impl Object for ScopeObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        key.as_str().and_then(|k| self.0.lookup(k))
    }
    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0.lookup(key)
    }
}

fn scope_value(scope: &Arc<dyn Lookup>) -> Value {
    Value::from_object(ScopeObject(Arc::clone(scope)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, Value>);
    impl Lookup for Map {
        fn lookup(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
    }

    fn scope() -> Arc<dyn Lookup> {
        let mut m = HashMap::new();
        m.insert("name".to_string(), Value::from("world"));
        m.insert(
            "s".to_string(),
            to_value(&serde_json::json!({"result": {"content": "hi", "size": 2}})),
        );
        m.insert("items".to_string(), to_value(&["a", "b"]));
        Arc::new(Map(m))
    }

    fn set(srcs: &[&str]) -> TemplateSet {
        TemplateSet::compile(srcs.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn fast_and_jinja_paths_render_the_same() {
        let t = set(&[
            "hello {{ name }} {{ s.result.content }}",
            "hello {{ name|upper }}",
        ]);
        let sc = scope();
        assert_eq!(t.render(TemplateId(0), &sc).unwrap(), "hello world hi");
        assert_eq!(t.render(TemplateId(1), &sc).unwrap(), "hello WORLD");
        assert!(matches!(t.compiled[0], Compiled::Fast(_)));
    }

    #[test]
    fn undefined_names_are_errors_that_name_them() {
        let t = set(&[
            "{{ nope }}",
            "{{ s.result.missing }}",
            "x {{ nope | upper }}",
        ]);
        let sc = scope();
        let e = t.render(TemplateId(0), &sc).unwrap_err();
        assert_eq!(e.message, "undefined value `nope`");
        let e = t.render(TemplateId(1), &sc).unwrap_err();
        assert_eq!(e.message, "undefined value `s.result.missing`");
        let e = t.render(TemplateId(2), &sc).unwrap_err();
        assert!(e.message.contains("nope"), "{}", e.message);
    }

    /// Found with the `template_render` fuzz target, given it by hand (its seed
    /// `bomb_str_format`): Python's `str.format` method padded to any width asked, a gigabyte
    /// for `{:>999999999}`. It is the `format` filter's formatter now, with the same bounds.
    #[test]
    fn the_str_format_method_is_bounded_like_the_filter() {
        let t = set(&[
            "{{ '{:>999999999}'.format(1) }}",
            "{{ '{0}-{name:>4}'.format(name, name='ab') }}",
        ]);
        let sc = scope();
        let e = t.render(TemplateId(0), &sc).unwrap_err();
        assert!(e.message.contains("at most 10000"), "{}", e.message);
        assert_eq!(t.render(TemplateId(1), &sc).unwrap(), "world-  ab");
    }

    #[test]
    fn a_render_gives_at_most_max_rendered_bytes() {
        let mut m = HashMap::new();
        m.insert("mib".to_string(), Value::from("x".repeat(1 << 20)));
        let sc: Arc<dyn Lookup> = Arc::new(Map(m));
        let t = set(&[
            "{% for i in range(17) %}{{ mib }}{% endfor %}",
            "{% for i in range(15) %}{{ mib }}{% endfor %}",
        ]);
        let e = t.render(TemplateId(0), &sc).unwrap_err();
        assert_eq!(
            e.message,
            "the rendered text is longer than 16 MiB, the most one template may give"
        );
        assert_eq!(t.render(TemplateId(1), &sc).unwrap().len(), 15 << 20);
    }

    #[test]
    fn evaluate_keeps_lists() {
        let t = set(&["{{ items }}", "{{ items | reverse | list }}"]);
        let sc = scope();
        let v = t.evaluate(TemplateId(0), &sc).unwrap();
        assert_eq!(v.len(), Some(2));
        let v = t.evaluate(TemplateId(1), &sc).unwrap();
        assert_eq!(v.get_item(&Value::from(0)).unwrap().as_str(), Some("b"));
    }

    #[test]
    fn a_lone_expression_is_told_apart_when_the_set_is_compiled() {
        let t = set(&[
            "{{ items }}",
            "  {{ items | length > 1 }} ",
            "{{ name }} and {{ name }}",
            "x {{ name }}",
            "{% if name %}yes{% endif %}",
        ]);
        let singles: Vec<bool> = (0..5)
            .map(|i| t.is_single_expression(TemplateId(i)))
            .collect();
        assert_eq!(singles, [true, true, false, false, false]);
        let sc = scope();
        for _ in 0..3 {
            assert_eq!(t.evaluate(TemplateId(1), &sc).unwrap(), Value::from(true));
            assert_eq!(
                t.evaluate(TemplateId(3), &sc).unwrap().as_str(),
                Some("x world")
            );
        }
    }

    #[test]
    fn names_are_found() {
        let t = set(&[
            "{{ a.b }} {{ c }}",
            "{% for x in xs %}{{ x.y }}{{ z.w }}{% endfor %}",
        ]);
        assert_eq!(
            t.names(TemplateId(0)).into_iter().collect::<Vec<_>>(),
            vec!["a.b", "c"]
        );
        let n = t.names(TemplateId(1));
        assert!(n.contains("xs") && n.contains("z.w") && !n.iter().any(|s| s.starts_with("x.")));
    }

    #[test]
    fn unknown_functions_and_globals_are_told_apart() {
        let t = set(&[
            "{{ nope(name) | upper }}",
            "{{ name | nope }}",
            "{{ range(3) | list }}",
        ]);
        assert_eq!(t.unknown_function(TemplateId(0)).as_deref(), Some("nope"));
        assert!(t.unknown_callable(TemplateId(1)).is_some());
        assert_eq!(t.unknown_function(TemplateId(1)), None);
        assert_eq!(t.unknown_callable(TemplateId(2)), None);
        assert!(t.is_global("range") && t.is_global("namespace") && !t.is_global("name"));
    }

    #[test]
    fn syntax_errors_are_collected() {
        let errs =
            TemplateSet::compile(vec!["{{ ok }}".to_string(), "{% if %}".to_string()].into())
                .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].index, 1);
    }
}
