//! Python literals: the lexer of string and number literals that orc's
//! expression language and literal parser share, and the parser of the
//! values `ast.literal_eval` accepts that orc supports.

mod error;
pub mod lex;
mod parse;

pub use error::{LiteralError, NumberError, StringError};
pub use parse::{MAX_DEPTH, parse};
