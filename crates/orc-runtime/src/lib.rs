//! The run lifecycle as a library.
