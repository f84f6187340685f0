//! Prints a [`StreamDefinition`] as a canonical definition that parses back to it.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter, Write};

use crate::parser::BRIDGE;
use crate::tokenizer::ends_value;
use crate::{AppRef, StreamDefinition};

impl Display for StreamDefinition {
    /// `[name = ][:source [--k=v]… > ]app [| app]…[ > :sink]`, `a || b` when
    /// unbound, `:a > :b` for a bridge; a label only when it differs from the
    /// app name; a value in single quotes (a quote doubled) when it is empty
    /// or holds whitespace, a quote, `|`, `;` or `>`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            write!(f, "{name} = ")?;
        }
        let bridge = self.source.is_some()
            && self.sink.is_some()
            && matches!(self.apps.as_slice(), [app] if is_bridge(app));
        if let Some(source) = &self.source {
            write!(f, ":{}", source.destination)?;
            properties(f, &source.properties)?;
            if !bridge {
                f.write_str(" > ")?;
            }
        }
        if !bridge {
            let separator = if self.unbound { " || " } else { " | " };
            for (i, app) in self.apps.iter().enumerate() {
                if i > 0 {
                    f.write_str(separator)?;
                }
                if app.label != app.name {
                    write!(f, "{}: ", app.label)?;
                }
                f.write_str(&app.name)?;
                properties(f, &app.properties)?;
            }
        }
        if let Some(sink) = &self.sink {
            write!(f, " > :{}", sink.destination)?;
        }
        Ok(())
    }
}

fn is_bridge(app: &AppRef) -> bool {
    app.name == BRIDGE && app.label == BRIDGE && app.properties.is_empty()
}

fn properties(f: &mut Formatter<'_>, properties: &BTreeMap<String, String>) -> fmt::Result {
    for (key, value) in properties {
        write!(f, " --{key}=")?;
        value_text(f, value)?;
    }
    Ok(())
}

/// A value as written: bare when it reads back unchanged, otherwise quoted.
fn value_text(f: &mut Formatter<'_>, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == '\'' || c == '"' || c.is_whitespace() || ends_value(c));
    if bare {
        return f.write_str(value);
    }
    f.write_char('\'')?;
    f.write_str(&value.replace('\'', "''"))?;
    f.write_char('\'')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::parse;

    fn canonical(text: &str) -> String {
        let def = parse(text).unwrap();
        let printed = def.to_string();
        assert_eq!(parse(&printed).unwrap(), def, "{printed}");
        printed
    }

    #[test]
    fn prints_canonically() {
        assert_eq!(canonical("time|log"), "time | log");
        assert_eq!(canonical("  s =  time   |   log  "), "s = time | log");
        assert_eq!(canonical(":a>:b"), ":a > :b");
        assert_eq!(canonical(":a --x=1 > :b"), ":a --x=1 > :b");
        assert_eq!(canonical(":a > bridge > :b"), ":a > :b");
        assert_eq!(
            canonical(":a > bridge --x=1 > :b"),
            ":a > bridge --x=1 > :b"
        );
        assert_eq!(canonical("a||b|| c"), "a || b || c");
        assert_eq!(canonical("t: transform"), "t: transform");
        assert_eq!(canonical("transform: transform"), "transform");
        assert_eq!(canonical("x > :d.e/*"), "x > :d.e/*");
    }

    #[test]
    fn quotes_values_only_when_needed() {
        assert_eq!(
            canonical("t --b=payload.x() --a=\"it's\" --c='' --d='x y' --e='a|b' --f=\"\"\"\""),
            "t --a='it''s' --b=payload.x() --c='' --d='x y' --e='a|b' --f='\"'"
        );
        assert_eq!(canonical("t --a='hi'+payload"), "t --a='''hi''+payload'");
        assert_eq!(canonical("t --a='l1\nl2;>'"), "t --a='l1\nl2;>'");
    }
}
