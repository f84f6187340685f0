//! Splits a definition into tokens, the way Data Flow's `Tokenizer` does.
//!
//! Positions are 0-based character offsets (not bytes). Right after an `=`
//! that is not followed by whitespace the tokenizer reads an argument value:
//! a run of characters up to whitespace, `|`, `;`, `>` or the end, in which
//! quotes protect those terminators, or a quoted string.

use crate::ParseError;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `[A-Za-z0-9_][A-Za-z0-9_$-]*`: app names, labels, argument names, stream names.
    Ident,
    /// An argument value that is not identifier-shaped (`payload.toUpperCase()`).
    Value,
    /// A quoted argument value (`'it''s'`); [`Token::text`] holds it unquoted.
    Literal,
    /// A quoted string that does not follow `=` (never valid).
    Stray,
    DoubleMinus,
    Equals,
    Pipe,
    DoublePipe,
    Colon,
    Gt,
    Dot,
    Star,
    Slash,
    Hash,
    /// `;`, `&`, `<`, `@`: Data Flow tokens that a stream never uses.
    Other,
}

/// One token: its kind, its text (unquoted for a [`Kind::Literal`]) and its character span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

fn error(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(crate) fn is_ident_part(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-'
}

/// Whitespace between tokens. Data Flow makes `\n` a token that no stream
/// accepts; we treat it as whitespace (YAML block scalars end with one).
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_quote(c: char) -> bool {
    c == '\'' || c == '"'
}

/// Ends an unquoted argument value.
pub(crate) fn ends_value(c: char) -> bool {
    is_space(c) || matches!(c, '|' | ';' | '>')
}

/// Tokenizes the whole definition, or reports the first character it cannot read.
pub(crate) fn tokenize(chars: &[char]) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut after_equals = false;
    let single = |kind, i: usize, c: char| Token {
        kind,
        text: c.to_string(),
        start: i,
        end: i + 1,
    };
    while let Some(&c) = chars.get(i) {
        if after_equals {
            after_equals = false;
            if !is_space(c) {
                if ends_value(c) {
                    return Err(error(
                        i,
                        format!("missing argument value: `=` is followed by `{c}`"),
                    ));
                }
                let token = value(chars, i)?;
                i = token.end;
                tokens.push(token);
                continue;
            }
        }
        match c {
            c if is_ident_start(c) => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|&c| is_ident_part(c)) {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Kind::Ident,
                    text: chars[start..i].iter().collect(),
                    start,
                    end: i,
                });
                continue;
            }
            c if is_space(c) => {}
            '-' => {
                if chars.get(i + 1) != Some(&'-') {
                    return Err(error(
                        i,
                        "unexpected single `-`: an argument starts with `--` (`--key=value`)",
                    ));
                }
                tokens.push(Token {
                    kind: Kind::DoubleMinus,
                    text: "--".into(),
                    start: i,
                    end: i + 2,
                });
                i += 1;
            }
            '|' => {
                if chars.get(i + 1) == Some(&'|') {
                    tokens.push(Token {
                        kind: Kind::DoublePipe,
                        text: "||".into(),
                        start: i,
                        end: i + 2,
                    });
                    i += 1;
                } else {
                    tokens.push(single(Kind::Pipe, i, c));
                }
            }
            '=' => {
                tokens.push(single(Kind::Equals, i, c));
                after_equals = true;
            }
            ':' => tokens.push(single(Kind::Colon, i, c)),
            '>' => tokens.push(single(Kind::Gt, i, c)),
            '.' => tokens.push(single(Kind::Dot, i, c)),
            '*' => tokens.push(single(Kind::Star, i, c)),
            '/' => tokens.push(single(Kind::Slash, i, c)),
            '#' => tokens.push(single(Kind::Hash, i, c)),
            ';' | '&' | '<' | '@' => tokens.push(single(Kind::Other, i, c)),
            '\'' | '"' => {
                let token = stray_quoted(chars, i)?;
                i = token.end;
                tokens.push(token);
                continue;
            }
            '\\' => {
                return Err(error(
                    i,
                    "unexpected escape character `\\`: inside a quoted value, double the quote instead",
                ));
            }
            c => {
                return Err(error(
                    i,
                    format!(
                        "unexpected character `{}` in the stream definition",
                        c.escape_debug()
                    ),
                ));
            }
        }
        i += 1;
    }
    Ok(tokens)
}

/// A quoted string that does not follow `=`: read so that the parser can name it.
fn stray_quoted(chars: &[char], start: usize) -> Result<Token, ParseError> {
    let q = chars[start];
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(unterminated(start, q)),
            Some(&c) if c == q => {
                if chars.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    i += 1;
                    break;
                }
            }
            Some(_) => i += 1,
        }
    }
    Ok(Token {
        kind: Kind::Stray,
        text: chars[start..i].iter().collect(),
        start,
        end: i,
    })
}

fn unterminated(position: usize, q: char) -> ParseError {
    error(
        position,
        format!("unterminated quoted value: the quote `{q}` here is never closed"),
    )
}

/// An argument value starting at `start` (right after `=`, not a terminator).
///
/// As in Data Flow: a value that starts with a quote and ends at its closing
/// quote is a quoted string (a doubled quote stands for one); otherwise the
/// value is the raw text up to a terminator, where quotes protect the
/// terminators (`payload.matches('a b')`, `'hi'+payload`).
fn value(chars: &[char], start: usize) -> Result<Token, ParseError> {
    let quote = Some(chars[start]).filter(|&c| is_quote(c));
    let mut i = start + usize::from(quote.is_some());
    let mut open = quote.is_some();
    let mut opened_at = start;
    let mut closed = 0usize;
    while let Some(&c) = chars.get(i) {
        if !open && ends_value(c) {
            break;
        }
        let toggles = match quote {
            Some(q) => c == q,
            None => is_quote(c),
        };
        if toggles {
            if quote == Some(c) && chars.get(i + 1) == Some(&c) {
                // A doubled quote stands for one (Data Flow does this for `'` only).
                i += 1;
            } else {
                open = !open;
                if open {
                    opened_at = i;
                } else {
                    closed += 1;
                }
            }
        }
        i += 1;
    }
    if open {
        // Data Flow keeps an unquoted value with an open quote to the end of the text.
        return Err(unterminated(opened_at, chars[opened_at]));
    }
    let raw: String = chars[start..i].iter().collect();
    if let Some(q) = quote
        && closed == 1
        && chars[i - 1] == q
    {
        let inner: String = chars[start + 1..i - 1].iter().collect();
        let qq: String = [q, q].iter().collect();
        return Ok(Token {
            kind: Kind::Literal,
            text: inner.replace(&qq, &q.to_string()),
            start,
            end: i,
        });
    }
    let ident = raw.starts_with(is_ident_start) && raw.chars().all(is_ident_part);
    Ok(Token {
        kind: if ident { Kind::Ident } else { Kind::Value },
        text: raw,
        start,
        end: i,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String, usize, usize)> {
        let chars: Vec<char> = text.chars().collect();
        tokenize(&chars)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text, t.start, t.end))
            .collect()
    }

    fn err(text: &str) -> ParseError {
        let chars: Vec<char> = text.chars().collect();
        tokenize(&chars).unwrap_err()
    }

    #[test]
    fn identifiers_and_symbols() {
        assert_eq!(
            kinds("gemfire-cq --a.b=c | x || y > :d/*#"),
            vec![
                (Kind::Ident, "gemfire-cq".into(), 0, 10),
                (Kind::DoubleMinus, "--".into(), 11, 13),
                (Kind::Ident, "a".into(), 13, 14),
                (Kind::Dot, ".".into(), 14, 15),
                (Kind::Ident, "b".into(), 15, 16),
                (Kind::Equals, "=".into(), 16, 17),
                (Kind::Ident, "c".into(), 17, 18),
                (Kind::Pipe, "|".into(), 19, 20),
                (Kind::Ident, "x".into(), 21, 22),
                (Kind::DoublePipe, "||".into(), 23, 25),
                (Kind::Ident, "y".into(), 26, 27),
                (Kind::Gt, ">".into(), 28, 29),
                (Kind::Colon, ":".into(), 30, 31),
                (Kind::Ident, "d".into(), 31, 32),
                (Kind::Slash, "/".into(), 32, 33),
                (Kind::Star, "*".into(), 33, 34),
                (Kind::Hash, "#".into(), 34, 35),
            ]
        );
    }

    #[test]
    fn values() {
        let v = |text: &str| kinds(text).pop().map(|(k, t, _, _)| (k, t)).unwrap();
        assert_eq!(v("a=b"), (Kind::Ident, "b".into()));
        assert_eq!(v("a=payload.x()"), (Kind::Value, "payload.x()".into()));
        assert_eq!(v("a='it''s'"), (Kind::Literal, "it's".into()));
        assert_eq!(
            v("a=\"say \"\"hi\"\"\""),
            (Kind::Literal, "say \"hi\"".into())
        );
        assert_eq!(v("a=''"), (Kind::Literal, String::new()));
        assert_eq!(v("a='hi'+payload"), (Kind::Value, "'hi'+payload".into()));
        assert_eq!(v("a=payload+'a b'"), (Kind::Value, "payload+'a b'".into()));
        assert_eq!(v("a='x|y;z>w'"), (Kind::Literal, "x|y;z>w".into()));
        assert_eq!(v("a=\"''''hi''''\""), (Kind::Literal, "''''hi''''".into()));
        assert_eq!(v("a=ccc,"), (Kind::Value, "ccc,".into()));
        // The value stops at a terminator; the `|` is a token of its own.
        assert_eq!(kinds("a=b|c")[2], (Kind::Ident, "b".into(), 2, 3));
    }

    #[test]
    fn positions_are_characters() {
        assert_eq!(err("ü").position, 0);
        assert_eq!(kinds("a='é' b")[3], (Kind::Ident, "b".into(), 6, 7));
    }

    #[test]
    fn errors() {
        assert_eq!(err("a --b='x").position, 6);
        assert!(err("a --b='x").message.contains("never closed"));
        assert_eq!(err("a --b=x'y | c").position, 7);
        assert_eq!(err("a 'x").position, 2);
        assert_eq!(err("a --b=| c").position, 6);
        assert!(err("a --b=| c").message.contains("missing argument value"));
        assert_eq!(err("a -b").position, 2);
        assert_eq!(err("a \\").position, 2);
        assert!(err("a (").message.contains("unexpected character `(`"));
    }
}
