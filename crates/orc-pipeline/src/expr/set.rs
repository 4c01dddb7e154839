//! The parsed condition expressions of a plan, indexed by [`ExprId`]: parsed once when a plan
//! is compiled or loaded, evaluated many times.

use crate::plan::ExprId;

use super::{Expr, ExprError};

/// Every condition expression of a plan, parsed. `Send + Sync`; shared by the runs of a plan.
#[derive(Debug, Clone, Default)]
pub struct ExprSet {
    exprs: Vec<Expr>,
}

/// An expression of a plan that does not parse: its index and the parser's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition expression {index} does not parse: {error}")]
pub struct ExprSetError {
    /// Which expression ([`ExprId`]'s index).
    pub index: usize,
    /// The parser's error.
    pub error: ExprError,
}

impl ExprSet {
    /// Parses every source (a plan's [`crate::Plan::exprs`]), in order.
    pub fn parse(sources: &[String]) -> Result<ExprSet, ExprSetError> {
        let exprs = sources
            .iter()
            .enumerate()
            .map(|(index, src)| Expr::parse(src).map_err(|error| ExprSetError { index, error }))
            .collect::<Result<_, _>>()?;
        Ok(ExprSet { exprs })
    }

    /// A set of expressions already parsed, in [`ExprId`] order.
    pub(crate) fn from_parsed(exprs: Vec<Expr>) -> ExprSet {
        ExprSet { exprs }
    }

    /// The expression `id` names, if the set has it.
    pub fn get(&self, id: ExprId) -> Option<&Expr> {
        self.exprs.get(id.0 as usize)
    }

    /// How many expressions the set holds.
    pub fn len(&self) -> usize {
        self.exprs.len()
    }

    /// Whether the set holds none.
    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    #[test]
    fn each_source_is_parsed_once_and_evaluates_the_same_every_time() {
        let set = ExprSet::parse(&["n > 2".to_string(), "'a' in s".to_string()]).unwrap();
        assert_eq!(set.len(), 2);
        let mut scope = Map::new();
        scope.insert("n".into(), json!(3));
        scope.insert("s".into(), json!("abc"));
        let first = set.get(ExprId(0)).unwrap();
        for _ in 0..100 {
            // The same parsed tree is handed out each time: nothing is parsed again.
            assert!(std::ptr::eq(set.get(ExprId(0)).unwrap(), first));
            assert_eq!(first.eval(&scope).unwrap(), json!(true));
            assert_eq!(
                set.get(ExprId(1)).unwrap().eval(&scope).unwrap(),
                json!(true)
            );
        }
        assert!(set.get(ExprId(2)).is_none());
    }

    #[test]
    fn a_source_that_does_not_parse_is_named() {
        let e = ExprSet::parse(&["ok".to_string(), "n >".to_string()]).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(
            e.to_string()
                .starts_with("condition expression 1 does not parse")
        );
    }
}
