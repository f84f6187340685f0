//! Java properties files, as Data Flow reads them: `app import` bulk files
//! and deployment properties (`stream deploy --propertiesFile`).
//!
//! Supported: `key=value`, `key: value` and `key value`; `#` and `!`
//! comments; a trailing `\` continues the line; `\t \n \r \f \uXXXX` and
//! `\<char>` escapes (`\=`, `\:`, `\ `, `\\`).

use std::collections::BTreeMap;

/// One `key=value` entry and the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Every entry of a properties file, in file order (a repeated key appears twice).
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let first = raw.trim_start();
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes.
        let mut logical = first.to_owned();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        out.push(Entry {
            line: index + 1,
            key: unescape(key),
            value: unescape(value),
        });
    }
    out
}

/// The entries as a map (the last of a repeated key wins, as in Java).
pub fn to_map(entries: &[Entry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace
/// (whitespace around the separator is not part of key or value).
fn split(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = match rest.strip_prefix(['=', ':']) {
                    Some(after) => after.trim_start(),
                    None => rest,
                };
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(usize, String, String)> {
        parse(text)
            .into_iter()
            .map(|e| (e.line, e.key, e.value))
            .collect()
    }

    #[test]
    fn equals_colon_and_space_separate_key_and_value() {
        let got = pairs(
            "deployer.log.count=2\n\
             deployer.*.kubernetes.limits.memory: 512Mi\n\
             app.time.date-format   yyyy\n\
             app.log.level = WARN\n",
        );
        assert_eq!(
            got,
            [
                (1, "deployer.log.count".into(), "2".into()),
                (
                    2,
                    "deployer.*.kubernetes.limits.memory".into(),
                    "512Mi".into()
                ),
                (3, "app.time.date-format".into(), "yyyy".into()),
                (4, "app.log.level".into(), "WARN".into()),
            ]
        );
    }

    #[test]
    fn comments_blank_lines_continuations_and_escapes() {
        let got = pairs(
            "# a comment\n\
             \n\
             ! another\n   \n\
             app.transform.expression=payload\\\n    .toUpperCase()\n\
             app.x.sep\\=key=a\\:b\\u0041\n\
             app.x.empty=\n",
        );
        assert_eq!(
            got,
            [
                (
                    5,
                    "app.transform.expression".into(),
                    "payload.toUpperCase()".into()
                ),
                (7, "app.x.sep=key".into(), "a:bA".into()),
                (8, "app.x.empty".into(), String::new()),
            ]
        );
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_in_the_map() {
        let map = to_map(&parse("a=1\na=2\n"));
        assert_eq!(map["a"], "2");
        assert_eq!(map.len(), 1);
    }
}
