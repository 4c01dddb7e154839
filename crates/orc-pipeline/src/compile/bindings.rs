//! The names a loop binds in its body: what the resolver lets templates use there, what
//! a one-action loop (`foreach`, `while` with an `action`) keeps beside its action, and
//! py-orc's `{{ $name }}` spelling of them.

/// Names bound inside a `for_each` body.
pub(super) const FOR_EACH_BINDINGS: &[&str] = &[
    "item",
    "index",
    "is_first",
    "is_last",
    "position",
    "length",
    "remaining",
    "has_next",
    "has_prev",
    "loop_id",
];
/// Names bound inside a `while` body and in its `while`/`until` conditions.
pub(super) const WHILE_BINDINGS: &[&str] = &[
    "iteration",
    "index",
    "is_first",
    "position",
    "loop_id",
    "loop_name",
];

/// py-orc's `$` spelling of a loop variable, made Jinja: `{{ $item }}` and `{{$item}}` (the two
/// forms py-orc replaces, and only when they are the whole expression) become `{{ item }}`.
/// Any other use of `$` is left alone, so it stays the syntax error it is in py-orc.
pub(super) fn strip_loop_dollars(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains("{{") || !src.contains('$') {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = src.to_string();
    for name in FOR_EACH_BINDINGS.iter().chain(WHILE_BINDINGS) {
        for form in [format!("{{{{ ${name} }}}}"), format!("{{{{${name}}}}}")] {
            if out.contains(&form) {
                out = out.replace(&form, &format!("{{{{ {name} }}}}"));
            }
        }
    }
    if out == src {
        std::borrow::Cow::Borrowed(src)
    } else {
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_orc_dollar_loop_names_become_jinja_names_only_in_py_orc_forms() {
        assert_eq!(
            strip_loop_dollars("data/{{ $item }}-{{$index}}.txt"),
            "data/{{ item }}-{{ index }}.txt"
        );
        assert_eq!(strip_loop_dollars("{{ $iteration }}"), "{{ iteration }}");
        // Only the whole-expression forms; other `$` text is the user's.
        assert_eq!(
            strip_loop_dollars("{{ $item | upper }}"),
            "{{ $item | upper }}"
        );
        assert_eq!(
            strip_loop_dollars("{{ $other }} costs $5"),
            "{{ $other }} costs $5"
        );
        assert_eq!(strip_loop_dollars("{{  $item }}"), "{{  $item }}");
    }
}
