//! Whether a value may be an input: the input's declared `choices` and `validation` limits
//! (py-orc's forms: `pattern`, `min_length`/`max_length`, `min`/`max`, `allowed_values`, and
//! `range: [min, max]`). The compiler checks declared defaults with it, the engine the values a
//! run is given.

use serde_json::Value;

use crate::plan::{Input, InputRules};

impl Input {
    /// Why `value` may not be this input, or `None` when it may. Null (no value) passes:
    /// `required` says whether one must be given.
    pub fn refuses(&self, value: &Value) -> Option<String> {
        if value.is_null() {
            return None;
        }
        // A list may also be a choice of items, each one of the choices
        // (`allowed_values: [markdown, pdf]` for `[markdown]`).
        let each = |items: &Vec<Value>, choices: &Vec<Value>| {
            items.iter().all(|v| choices.iter().any(|c| same(c, v)))
        };
        if let Some(choices) = &self.choices
            && !choices.iter().any(|c| same(c, value))
            && !matches!(value, Value::Array(items) if each(items, choices))
        {
            let shown: Vec<String> = choices.iter().map(show).collect();
            return Some(format!(
                "{} is not one of its choices: {}",
                show(value),
                shown.join(", ")
            ));
        }
        self.rules.refuses(value)
    }
}

impl InputRules {
    /// Why `value` breaks a rule, or `None`.
    pub fn refuses(&self, value: &Value) -> Option<String> {
        let length = match value {
            Value::String(s) => Some(("characters", s.chars().count() as u64)),
            Value::Array(a) => Some(("items", a.len() as u64)),
            _ => None,
        };
        if let Some((unit, n)) = length {
            if let Some(min) = self.min_length
                && n < min
            {
                return Some(format!("it has {n} {unit}, fewer than `min_length` {min}"));
            }
            if let Some(max) = self.max_length
                && n > max
            {
                return Some(format!("it has {n} {unit}, more than `max_length` {max}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.min
                && n < min
            {
                return Some(format!("{value} is less than the minimum {}", show_f(min)));
            }
            if let Some(max) = self.max
                && n > max
            {
                return Some(format!("{value} is more than the maximum {}", show_f(max)));
            }
        }
        if let (Some(p), Value::String(s)) = (&self.pattern, value) {
            match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => return Some(format!("{} does not match the pattern `{p}`", show(value))),
                Err(_) => {
                    return Some(format!(
                        "its pattern `{p}` is not a valid regular expression"
                    ));
                }
            }
        }
        None
    }
}

/// Equal as inputs: numbers by value (`3` is `3.0`), everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn show_f(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use crate::plan::{Input, InputRules};

    fn input(choices: Option<Vec<serde_json::Value>>, rules: InputRules) -> Input {
        Input {
            name: "x".into(),
            default: None,
            required: false,
            kind: None,
            choices,
            rules,
        }
    }

    #[test]
    fn choices_refuse_other_values_and_name_the_choices() {
        let i = input(
            Some(vec![json!("basic"), json!("full")]),
            InputRules::default(),
        );
        assert_eq!(i.refuses(&json!("basic")), None);
        assert_eq!(
            i.refuses(&json!("fast")).unwrap(),
            "`fast` is not one of its choices: `basic`, `full`"
        );
        assert_eq!(i.refuses(&serde_json::Value::Null), None);
        let n = input(Some(vec![json!(1), json!(2)]), InputRules::default());
        assert_eq!(n.refuses(&json!(2.0)), None);
        assert_eq!(n.refuses(&json!([2, 1])), None);
        assert!(n.refuses(&json!([2, 3])).is_some());
    }

    #[test]
    fn rules_bound_lengths_numbers_and_patterns() {
        let r = InputRules {
            pattern: Some("[a-z]+".into()),
            min_length: Some(3),
            max_length: Some(5),
            min: Some(5.0),
            max: Some(100.0),
        };
        let i = input(None, r);
        assert_eq!(i.refuses(&json!("abcd")), None);
        assert!(
            i.refuses(&json!("ab"))
                .unwrap()
                .contains("fewer than `min_length` 3")
        );
        assert!(
            i.refuses(&json!("abcdef"))
                .unwrap()
                .contains("more than `max_length` 5")
        );
        assert!(
            i.refuses(&json!("abC1"))
                .unwrap()
                .contains("does not match")
        );
        assert!(
            i.refuses(&json!(4))
                .unwrap()
                .contains("less than the minimum 5")
        );
        assert!(
            i.refuses(&json!(101))
                .unwrap()
                .contains("more than the maximum 100")
        );
        assert_eq!(i.refuses(&json!(50)), None);
        assert!(i.refuses(&json!(["a"])).unwrap().contains("1 items"));
    }
}
