//! What a definition means: the model the operator expands into apps.

use std::collections::BTreeMap;

use serde::Serialize;

/// A parsed stream definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamDefinition {
    /// The name written in the text (`name = definition`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The apps, in order (a bridge `:a > :b` is one app named `bridge`).
    pub apps: Vec<AppRef>,
    /// The named destination the first app reads (`:d > app`), or a tap (`:stream.label`).
    pub source: Option<Source>,
    /// The named destination the last app writes (`app > :d`).
    pub sink: Option<Sink>,
    /// `a || b`: apps deployed together but not wired to each other.
    pub unbound: bool,
}

/// One app of a definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppRef {
    /// The registered app name (`transform`).
    pub name: String,
    /// The label (`upper: transform`), the app name when none was written.
    pub label: String,
    /// `--key=value` arguments, by key (a repeated key keeps the last value).
    pub properties: BTreeMap<String, String>,
}

/// A source destination: `:name > …`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Destination name without the `:`; a dotted name is a tap (`stream.label`).
    pub destination: String,
    /// `--key=value` arguments written after the destination.
    pub properties: BTreeMap<String, String>,
}

impl Source {
    /// `(stream, label)` when the destination taps another stream's app.
    pub fn tap(&self) -> Option<(&str, &str)> {
        self.destination.split_once('.')
    }
}

/// A sink destination: `… > :name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sink {
    /// Destination name without the `:`.
    pub destination: String,
}

/// Why a definition does not parse: a 0-based character offset and a message naming the problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(pos {}): {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}
