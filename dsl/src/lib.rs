//! The Spring Cloud Data Flow stream DSL (Data Flow 2.11): pipes, named
//! destinations, taps, labels, app properties, the destination bridge and
//! unbound app lists. [`parse`] turns a definition into a
//! [`StreamDefinition`]; its `Display` prints the definition back in a
//! canonical form that parses to the same model. Pure: no I/O, no panics.

mod model;
mod parser;
mod print;
mod tokenizer;

pub use model::{AppRef, ParseError, Sink, Source, StreamDefinition};

/// Parses a stream definition, optionally named in the text (`name = definition`).
///
/// An error's `position` is a 0-based character offset: the start of the
/// offending token, or the text's length when something is missing at the end.
pub fn parse(text: &str) -> Result<StreamDefinition, ParseError> {
    parser::parse(text)
}
