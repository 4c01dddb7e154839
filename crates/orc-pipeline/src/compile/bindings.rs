//! The names a loop binds in its body: what the resolver lets templates use there, and what
//! a one-action loop (`foreach`, `while` with an `action`) keeps beside its action.

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
