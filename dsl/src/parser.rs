//! The stream grammar over the tokens, following Data Flow's `StreamParser`:
//!
//! ```text
//! stream      := [name '='] [source '>'] apps [ '>' sink ]  |  [name '='] source '>' sink
//! source      := ':' destination args
//! sink        := ':' destination
//! apps        := app ('|' app)*  |  app ('||' app)*
//! app         := [label ':'] name args
//! args        := ('--' key '=' value)*
//! ```

use std::collections::BTreeMap;

use crate::tokenizer::{Kind, Token, tokenize};
use crate::{AppRef, ParseError, Sink, Source, StreamDefinition};

/// The synthetic app between the two destinations of `:a > :b`.
pub(crate) const BRIDGE: &str = "bridge";

pub(crate) fn parse(text: &str) -> Result<StreamDefinition, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let tokens = tokenize(&chars)?;
    Parser {
        end: chars.len(),
        tokens,
        pos: 0,
    }
    .stream()
}

fn error(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

/// How a token reads in a message: its text, shortened when long.
fn shown(t: &Token) -> String {
    let text: String = match t.kind {
        Kind::Literal => format!("'{}'", t.text),
        _ => t.text.clone(),
    };
    if text.chars().count() > 40 {
        format!("`{}…`", text.chars().take(40).collect::<String>())
    } else {
        format!("`{text}`")
    }
}

/// A destination name is made of these tokens (and dots between them).
fn is_destination_part(kind: Kind) -> bool {
    matches!(kind, Kind::Ident | Kind::Star | Kind::Slash | Kind::Hash)
}

struct Parser {
    /// The text's length in characters: where "missing …" errors point.
    end: usize,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_is(&self, kind: Kind) -> bool {
        self.peek().is_some_and(|t| t.kind == kind)
    }

    /// Whether the next token starts right where the previous one ended.
    fn next_adjacent(&self) -> bool {
        match (
            self.pos.checked_sub(1).and_then(|p| self.tokens.get(p)),
            self.peek(),
        ) {
            (Some(last), Some(next)) => last.end == next.start,
            _ => false,
        }
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn stream(&mut self) -> Result<StreamDefinition, ParseError> {
        if self.tokens.is_empty() {
            return Err(error(
                self.end,
                "the stream definition is empty: expected apps such as `time | log`",
            ));
        }
        let name = self.stream_name()?;
        let source = self.source()?;
        let mut apps = Vec::new();
        let mut unbound = false;
        if source.is_some()
            && self.peek_is(Kind::Colon)
            && !self.tokens[self.pos..].iter().any(|t| t.kind == Kind::Pipe)
        {
            // `:a > :b`: a bridge app between the two destinations; read the `>` again.
            self.pos -= 1;
            let gt = self.tokens[self.pos].start;
            apps.push((
                AppRef {
                    name: BRIDGE.into(),
                    label: BRIDGE.into(),
                    properties: BTreeMap::new(),
                },
                gt,
            ));
        } else {
            (apps, unbound) = self.apps(source.is_some())?;
        }
        let sink = self.sink()?;
        if let Some(t) = self.peek() {
            let hint = match t.kind {
                Kind::Ident => " (separate apps with `|`; arguments are written `--key=value`)",
                Kind::Gt => " (a stream has at most one sink destination)",
                Kind::Equals => " (write arguments as `--key=value`)",
                Kind::Colon => {
                    " (a label is written `label: app`; a destination `:name` only starts or ends a stream)"
                }
                _ => "",
            };
            return Err(error(
                t.start,
                format!(
                    "unexpected {} after the end of the stream definition{hint}",
                    shown(t)
                ),
            ));
        }
        check_labels(&apps)?;
        Ok(StreamDefinition {
            name,
            apps: apps.into_iter().map(|(app, _)| app).collect(),
            source,
            sink,
            unbound,
        })
    }

    /// `name = …`: the first token, when the second is `=`.
    fn stream_name(&mut self) -> Result<Option<String>, ParseError> {
        if self.tokens.get(1).is_none_or(|t| t.kind != Kind::Equals) {
            return Ok(None);
        }
        let t = &self.tokens[0];
        let valid = t.kind == Kind::Ident && !t.text.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(error(
                t.start,
                format!(
                    "illegal stream name {}: a stream name starts with a letter or `_` and holds letters, digits, `_`, `$` and `-`",
                    shown(t)
                ),
            ));
        }
        let name = t.text.clone();
        self.pos = 2;
        Ok(Some(name))
    }

    /// `:destination [args] >`, when a `>` comes before any `|` and the text starts with `:`.
    fn source(&mut self) -> Result<Option<Source>, ParseError> {
        let gt_first = self.tokens[self.pos..]
            .iter()
            .find(|t| matches!(t.kind, Kind::Gt | Kind::Pipe))
            .is_some_and(|t| t.kind == Kind::Gt);
        if !gt_first || !self.peek_is(Kind::Colon) {
            return Ok(None);
        }
        self.bump();
        let destination = self.destination_name()?;
        let properties = self.args()?;
        match self.bump() {
            Some(t) if t.kind == Kind::Gt => {}
            Some(t) => {
                return Err(error(
                    t.start,
                    format!(
                        "expected `>` after the source destination `:{destination}`, found {}",
                        shown(&t)
                    ),
                ));
            }
            None => {
                return Err(error(
                    self.end,
                    format!("expected `>` after the source destination `:{destination}`"),
                ));
            }
        }
        Ok(Some(Source {
            destination,
            properties,
        }))
    }

    /// `'>' ':' destination`, when the next token is `>`.
    fn sink(&mut self) -> Result<Option<Sink>, ParseError> {
        if !self.peek_is(Kind::Gt) {
            return Ok(None);
        }
        self.bump();
        match self.peek() {
            None => {
                return Err(error(
                    self.end,
                    "missing sink destination after `>`: expected `:name`",
                ));
            }
            Some(t) if t.kind != Kind::Colon => {
                return Err(error(
                    t.start,
                    format!(
                        "a sink destination starts with `:`: write `> :{}`, not `> {}`",
                        t.text, t.text
                    ),
                ));
            }
            Some(_) => {}
        }
        self.bump();
        let destination = self.destination_name()?;
        if let Some(t) = self.peek().filter(|t| t.kind == Kind::DoubleMinus) {
            return Err(error(
                t.start,
                format!("the sink destination `:{destination}` takes no arguments"),
            ));
        }
        Ok(Some(Sink { destination }))
    }

    /// The name after a destination's `:`: parts (identifiers, `*`, `/`, `#`)
    /// and dots, with no whitespace anywhere.
    fn destination_name(&mut self) -> Result<String, ParseError> {
        let Some(first) = self.peek() else {
            return Err(error(self.end, "missing destination name after `:`"));
        };
        if !self.next_adjacent() {
            return Err(error(
                first.start,
                "no whitespace allowed between `:` and the destination name",
            ));
        }
        if !is_destination_part(first.kind) {
            return Err(error(
                first.start,
                format!(
                    "unexpected {} in a destination name (a name holds letters, digits, `_`, `-`, `$`, `.`, `*`, `/` and `#`)",
                    shown(first)
                ),
            ));
        }
        let mut name = String::new();
        self.parts(&mut name);
        while let Some(dot) = self.peek().filter(|t| t.kind == Kind::Dot) {
            let dot_start = dot.start;
            let dot_end = dot.end;
            if !self.next_adjacent() {
                return Err(error(
                    dot_start,
                    "no whitespace allowed in a destination name",
                ));
            }
            self.bump();
            name.push('.');
            match self.peek() {
                Some(t) if is_destination_part(t.kind) && !self.next_adjacent() => {
                    return Err(error(
                        t.start,
                        "no whitespace allowed in a destination name",
                    ));
                }
                Some(t) if is_destination_part(t.kind) => self.parts(&mut name),
                _ => {
                    return Err(error(
                        dot_end,
                        format!("the destination name `{name}` cannot end with `.`"),
                    ));
                }
            }
        }
        Ok(name)
    }

    /// Adjacent destination-name parts, from the current (a part) on.
    fn parts(&mut self, name: &mut String) {
        if let Some(t) = self.bump() {
            name.push_str(&t.text);
        }
        while self.next_adjacent() && self.peek().is_some_and(|t| is_destination_part(t.kind)) {
            if let Some(t) = self.bump() {
                name.push_str(&t.text);
            }
        }
    }

    /// `app (sep app)*`: the apps with their start positions, and whether `||` joined them.
    fn apps(&mut self, has_source: bool) -> Result<(Vec<(AppRef, usize)>, bool), ParseError> {
        let place = if has_source {
            "after the source destination's `>`"
        } else {
            "at the start of the stream"
        };
        let mut apps = vec![self.app(place)?];
        let mut pipe = false;
        let mut double_pipe: Option<usize> = None;
        while let Some(t) = self.peek() {
            let at = t.start;
            match t.kind {
                Kind::Pipe => {
                    if double_pipe.is_some() {
                        return Err(mix(at));
                    }
                    pipe = true;
                    self.bump();
                    apps.push(self.app("after `|`")?);
                }
                Kind::DoublePipe => {
                    if has_source {
                        return Err(double_pipe_with_destination(at));
                    }
                    if pipe {
                        return Err(mix(at));
                    }
                    double_pipe = Some(at);
                    self.bump();
                    apps.push(self.app("after `||`")?);
                }
                _ => break,
            }
        }
        if let Some(at) = double_pipe
            && self.peek_is(Kind::Gt)
        {
            return Err(double_pipe_with_destination(at));
        }
        Ok((apps, double_pipe.is_some()))
    }

    /// `[label ':'] name args`, with where it starts (its label's start when labelled).
    fn app(&mut self, place: &str) -> Result<(AppRef, usize), ParseError> {
        let first = match self.bump() {
            Some(t) if t.kind == Kind::Ident => t,
            Some(t) => {
                let hint = match t.kind {
                    Kind::Colon => {
                        " (a destination `:name` is followed by `>`, and only starts or ends a stream)"
                    }
                    Kind::DoubleMinus => " (arguments follow an app name)",
                    _ => "",
                };
                return Err(error(
                    t.start,
                    format!("expected an app name {place}, found {}{hint}", shown(&t)),
                ));
            }
            None => return Err(error(self.end, format!("missing app name {place}"))),
        };
        let start = first.start;
        let mut name = first;
        let mut label = None;
        if self.peek_is(Kind::Colon) && self.next_adjacent() {
            self.bump();
            if let Some(t) = self.peek().filter(|_| self.next_adjacent()) {
                return Err(error(
                    t.start,
                    format!(
                        "expected whitespace after the label `{}:` (write `{}: app`)",
                        name.text, name.text
                    ),
                ));
            }
            let app = match self.bump() {
                Some(t) if t.kind == Kind::Ident => t,
                Some(t) => {
                    return Err(error(
                        t.start,
                        format!(
                            "expected an app name after the label `{}:`, found {}",
                            name.text,
                            shown(&t)
                        ),
                    ));
                }
                None => {
                    return Err(error(
                        self.end,
                        format!("missing app name after the label `{}:`", name.text),
                    ));
                }
            };
            label = Some(std::mem::replace(&mut name, app));
            if self.peek_is(Kind::Colon) && self.next_adjacent() {
                return Err(error(
                    name.start,
                    "an app has at most one label: `label: app`",
                ));
            }
        }
        let properties = self.args()?;
        let label = label.map_or_else(|| name.text.clone(), |l| l.text);
        Ok((
            AppRef {
                name: name.text,
                label,
                properties,
            },
            start,
        ))
    }

    /// `(--key=value)*`; a repeated key keeps its last value.
    fn args(&mut self) -> Result<BTreeMap<String, String>, ParseError> {
        let mut properties = BTreeMap::new();
        if let Some(t) = self.peek().filter(|t| t.kind == Kind::DoubleMinus)
            && self.next_adjacent()
        {
            return Err(error(
                t.start,
                "expected whitespace before the argument `--`",
            ));
        }
        while self.peek_is(Kind::DoubleMinus) {
            self.bump();
            let key = self.arg_name()?;
            match self.peek() {
                None => {
                    return Err(error(
                        self.end,
                        format!("missing `=value` after the argument name `--{key}`"),
                    ));
                }
                Some(t) if t.kind == Kind::Equals && !self.next_adjacent() => {
                    return Err(error(
                        t.start,
                        format!(
                            "no whitespace allowed between the argument name `--{key}` and `=`"
                        ),
                    ));
                }
                Some(t) if t.kind != Kind::Equals => {
                    return Err(error(
                        t.start,
                        format!(
                            "expected `=` after the argument name `--{key}`, found {}",
                            shown(t)
                        ),
                    ));
                }
                Some(_) => {}
            }
            self.bump();
            let value = match self.peek() {
                None => {
                    return Err(error(self.end, format!("missing value after `--{key}=`")));
                }
                Some(t)
                    if !self.next_adjacent()
                        && matches!(
                            t.kind,
                            Kind::Ident | Kind::Value | Kind::Literal | Kind::Stray
                        ) =>
                {
                    return Err(error(
                        t.start,
                        format!(
                            "no whitespace allowed between `--{key}=` and the value (quote a value that holds spaces)"
                        ),
                    ));
                }
                Some(t) if matches!(t.kind, Kind::Ident | Kind::Value | Kind::Literal) => {
                    t.text.clone()
                }
                Some(t) => {
                    return Err(error(
                        t.start,
                        format!("missing value after `--{key}=`, found {}", shown(t)),
                    ));
                }
            };
            self.bump();
            properties.insert(key, value);
        }
        Ok(properties)
    }

    /// An argument name after `--`: identifiers joined by dots, no whitespace.
    fn arg_name(&mut self) -> Result<String, ParseError> {
        let mut key = match self.peek() {
            None => return Err(error(self.end, "missing argument name after `--`")),
            Some(t) if t.kind == Kind::Ident && !self.next_adjacent() => {
                return Err(error(
                    t.start,
                    "no whitespace allowed between `--` and the argument name",
                ));
            }
            Some(t) if t.kind == Kind::Ident => t.text.clone(),
            Some(t) => {
                return Err(error(
                    t.start,
                    format!("expected an argument name after `--`, found {}", shown(t)),
                ));
            }
        };
        self.bump();
        while let Some(dot) = self.peek().filter(|t| t.kind == Kind::Dot) {
            if !self.next_adjacent() {
                return Err(error(
                    dot.start,
                    format!("no whitespace allowed in the argument name `{key}.`"),
                ));
            }
            self.bump();
            key.push('.');
            match self.peek() {
                None => {
                    return Err(error(
                        self.end,
                        format!("missing a name part after `--{key}`"),
                    ));
                }
                Some(t) if t.kind == Kind::Ident && !self.next_adjacent() => {
                    return Err(error(
                        t.start,
                        format!("no whitespace allowed in the argument name `{key}`"),
                    ));
                }
                Some(t) if t.kind == Kind::Ident => key.push_str(&t.text),
                Some(t) => {
                    return Err(error(
                        t.start,
                        format!("expected a name part after `--{key}`, found {}", shown(t)),
                    ));
                }
            }
            self.bump();
        }
        Ok(key)
    }
}

fn mix(position: usize) -> ParseError {
    error(
        position,
        "do not mix `|` and `||`: use `|` to connect apps into a stream, or `||` to list unbound apps",
    )
}

fn double_pipe_with_destination(position: usize) -> ParseError {
    error(
        position,
        "do not use `||` in a stream with a destination (`:name`): `||` lists unbound apps; connect apps with `|`",
    )
}

/// Every app's label (written or defaulted to its name) must be unique.
fn check_labels(apps: &[(AppRef, usize)]) -> Result<(), ParseError> {
    for (i, (app, start)) in apps.iter().enumerate() {
        if let Some(first) = apps[..i].iter().position(|(a, _)| a.label == app.label) {
            return Err(error(
                *start,
                format!(
                    "duplicate app label `{}`: give one of them a label (`other: {}`); apps {} and {} both use it",
                    app.label,
                    app.name,
                    first + 1,
                    i + 1,
                ),
            ));
        }
    }
    Ok(())
}
