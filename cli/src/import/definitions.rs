//! Stream definitions as a Data Flow user has them:
//!
//! - JSON of Data Flow's REST `GET /streams/definitions` (a HAL page,
//!   `_embedded.streamDefinitionResourceList`), or one resource of
//!   `GET /streams/definitions/{name}`, or a bare array of resources;
//! - text, one stream a line: `name = definition`;
//! - Data Flow shell lines: `stream create --name NAME --definition "…" [--deploy]`
//!   or `stream create NAME --definition '…'`.
//!
//! JSON is recognised by its first non-blank character (`{` or `[`). In
//! text, blank lines and `//` and `#` comments are skipped.

use serde_json::Value;

use super::Problems;

/// One stream to import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub name: String,
    pub definition: String,
    /// `FILE` or `FILE:LINE`, for messages.
    pub origin: String,
}

/// Data Flow's mask for a secret in a definition it hands out.
const MASK: &str = "******";

/// The streams of one file; problems are added to `problems`.
pub fn read(text: &str, file: &str, problems: &mut Problems) -> Vec<StreamEntry> {
    let out = if matches!(text.trim_start().chars().next(), Some('{' | '[')) {
        read_json(text, file, problems)
    } else {
        read_text(text, file, problems)
    };
    for s in &out {
        if s.definition.contains(MASK) {
            problems.warn(format!(
                "{}: stream {}: the definition holds Data Flow's mask `{MASK}` where a secret was: \
                 put the real value back (or use a Secret) before applying",
                s.origin, s.name
            ));
        }
    }
    out
}

fn read_json(text: &str, file: &str, problems: &mut Problems) -> Vec<StreamEntry> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.error(format!("{file}: not valid JSON: {e}"));
            return Vec::new();
        }
    };
    let resources: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(o) if o.contains_key("name") => vec![&value],
        Value::Object(o) => match o.get("_embedded") {
            // An empty page has no `_embedded` at all.
            None => Vec::new(),
            Some(embedded) => match embedded
                .get("streamDefinitionResourceList")
                .and_then(Value::as_array)
            {
                Some(items) => items.iter().collect(),
                None => {
                    problems.error(format!(
                        "{file}: `_embedded` has no `streamDefinitionResourceList`: is this the answer of \
                         GET /streams/definitions?"
                    ));
                    return Vec::new();
                }
            },
        },
        _ => {
            problems.error(format!(
                "{file}: expected the JSON of Data Flow's GET /streams/definitions"
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, resource) in resources.into_iter().enumerate() {
        let text_field = |k: &str| {
            resource
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        };
        let origin = format!("{file}: streamDefinitionResourceList[{i}]");
        let Some(name) = text_field("name") else {
            problems.error(format!("{origin}: no `name`"));
            continue;
        };
        let Some(definition) = text_field("originalDslText").or_else(|| text_field("dslText"))
        else {
            problems.error(format!(
                "{origin}: stream {name}: neither `originalDslText` nor `dslText`"
            ));
            continue;
        };
        out.push(StreamEntry {
            name: name.to_owned(),
            definition: definition.trim().to_owned(),
            origin: file.to_owned(),
        });
    }
    out
}

fn read_text(text: &str, file: &str, problems: &mut Problems) -> Vec<StreamEntry> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let origin = format!("{file}:{}", index + 1);
        let line = raw.trim();
        let line = line.strip_prefix("dataflow:>").unwrap_or(line).trim();
        if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().take(2).collect();
        let parsed = match words.as_slice() {
            ["stream", "create"] => shell_create(line),
            ["stream" | "app" | "task" | "dataflow" | "runtime", _] => {
                problems.warn(format!(
                    "{origin}: skipped `{}`: only `stream create` lines define streams",
                    words.join(" ")
                ));
                continue;
            }
            _ => name_equals(line),
        };
        match parsed {
            Ok((name, definition)) => out.push(StreamEntry {
                name,
                definition,
                origin,
            }),
            Err(message) => problems.error(format!("{origin}: {message}")),
        }
    }
    out
}

/// `name = definition`.
fn name_equals(line: &str) -> Result<(String, String), String> {
    let expected = || {
        "expected `name = definition` or `stream create --name NAME --definition \"DEFINITION\"`"
            .to_owned()
    };
    let (name, definition) = line.split_once('=').ok_or_else(expected)?;
    let name = name.trim();
    let plain = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let definition = definition.trim();
    if !plain {
        return Err(expected());
    }
    if definition.is_empty() {
        return Err(format!("stream {name}: empty definition"));
    }
    Ok((name.to_owned(), definition.to_owned()))
}

/// `stream create [--name] NAME --definition "…" [--description …] [--deploy [true|false]]`.
fn shell_create(line: &str) -> Result<(String, String), String> {
    let words = shell_words(line)?;
    let mut name = None;
    let mut definition = None;
    let mut args = words.into_iter().skip(2).peekable();
    while let Some(word) = args.next() {
        match word.as_str() {
            "--name" => name = args.next(),
            "--definition" => definition = args.next(),
            "--description" => {
                args.next();
            }
            "--deploy" => {
                // `--deploy` alone, or `--deploy true|false`.
                args.next_if(|v| v == "true" || v == "false");
            }
            option if option.starts_with("--") => {
                return Err(format!("`stream create`: unknown option `{option}`"));
            }
            _ if name.is_none() => name = Some(word),
            _ => return Err(format!("`stream create`: unexpected `{word}`")),
        }
    }
    let name = name.ok_or("`stream create` without a stream name (--name NAME)")?;
    let definition = definition
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("stream {name}: `stream create` without --definition"))?;
    Ok((name, definition))
}

/// Words as Spring Shell splits them: whitespace outside quotes; `"…"` and
/// `'…'` group, and `\` escapes the next character inside either.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let word = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {c} quote")),
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some(e) if e == c || e == '\\' => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(format!("unterminated {c} quote")),
                        },
                        Some(other) => word.push(other),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(current.take()),
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(current);
    Ok(words)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn streams(text: &str) -> (Vec<(String, String)>, Problems) {
        let mut problems = Problems::default();
        let got = read(text, "f", &mut problems)
            .into_iter()
            .map(|s| (s.name, s.definition))
            .collect();
        (got, problems)
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    const HAL: &str = r#"{
      "_embedded": {
        "streamDefinitionResourceList": [
          {"name": "ticktock", "dslText": "time | log", "originalDslText": "time | log --level=WARN",
           "status": "deployed", "description": "", "statusDescription": "The stream has been successfully deployed",
           "_links": {"self": {"href": "http://localhost:9393/streams/definitions/ticktock"}}},
          {"name": "tap", "dslText": ":ticktock.time > log", "status": "undeployed", "description": "",
           "statusDescription": "The app or group is known to the system, but is not currently deployed",
           "_links": {"self": {"href": "http://localhost:9393/streams/definitions/tap"}}},
          {"name": "secret", "dslText": "http --password='******' | log", "originalDslText": "http --password='******' | log"}
        ]
      },
      "_links": {"self": {"href": "http://localhost:9393/streams/definitions?page=0&size=20"}},
      "page": {"size": 20, "totalElements": 3, "totalPages": 1, "number": 0}
    }"#;

    #[test]
    fn hal_json_prefers_the_original_dsl_text_and_warns_of_masked_secrets() {
        let (got, problems) = streams(HAL);
        assert_eq!(
            got,
            [
                pair("ticktock", "time | log --level=WARN"),
                pair("tap", ":ticktock.time > log"),
                pair("secret", "http --password='******' | log"),
            ]
        );
        assert!(problems.errors.is_empty());
        assert_eq!(problems.warnings.len(), 1);
        assert!(problems.warnings[0].contains("stream secret"));
        assert!(problems.warnings[0].contains("******"));
    }

    #[test]
    fn an_empty_page_a_single_resource_and_an_array_are_json_too() {
        let (got, p) = streams(r#"  {"_links": {}, "page": {"size": 20, "totalElements": 0}}"#);
        assert!(got.is_empty() && p.errors.is_empty());
        let (got, _) = streams(r#"{"name": "one", "dslText": "time | log"}"#);
        assert_eq!(got, [pair("one", "time | log")]);
        let (got, _) = streams(r#"[{"name": "two", "dslText": "a | b"}]"#);
        assert_eq!(got, [pair("two", "a | b")]);
        let (_, p) = streams(r#"{"_embedded": {"appRegistrationResourceList": []}}"#);
        assert!(p.errors[0].contains("streamDefinitionResourceList"));
        let (_, p) = streams("{not json");
        assert!(p.errors[0].contains("not valid JSON"));
    }

    #[test]
    fn text_lines_are_name_equals_definition() {
        let (got, problems) = streams(
            "# exported streams\n\
             \n\
             ticktock = time | transform --expression=payload.toUpperCase() | log\n\
             // a tap\n\
             ticktock-tap=:ticktock.transform > log\n",
        );
        assert_eq!(
            got,
            [
                pair(
                    "ticktock",
                    "time | transform --expression=payload.toUpperCase() | log"
                ),
                pair("ticktock-tap", ":ticktock.transform > log"),
            ]
        );
        assert!(problems.errors.is_empty() && problems.warnings.is_empty());
    }

    #[test]
    fn a_line_without_a_name_is_an_error_naming_the_line() {
        let (got, problems) = streams("ok = a | b\ntime | transform --x=1 | log\nempty =\n");
        assert_eq!(got, [pair("ok", "a | b")]);
        assert!(problems.errors[0].starts_with("f:2: expected `name = definition`"));
        assert!(problems.errors[1].starts_with("f:3: stream empty: empty definition"));
    }

    #[test]
    fn shell_lines_define_streams() {
        let (got, problems) = streams(
            "stream create --name ticktock --definition \"time | transform --expression='payload.toUpperCase()' | log\" --deploy\n\
             dataflow:>stream create tap --definition ':ticktock.time > log --name=\"x\"' --deploy false\n\
             stream create --definition \"http | log\" --name web --description \"an \\\"http\\\" stream\"\n\
             stream deploy --name ticktock --properties \"deployer.log.count=2\"\n",
        );
        assert_eq!(
            got,
            [
                pair(
                    "ticktock",
                    "time | transform --expression='payload.toUpperCase()' | log"
                ),
                pair("tap", ":ticktock.time > log --name=\"x\""),
                pair("web", "http | log"),
            ]
        );
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        assert_eq!(problems.warnings.len(), 1);
        assert!(problems.warnings[0].contains("f:4: skipped `stream deploy`"));
    }

    #[test]
    fn broken_shell_lines_are_errors() {
        let (got, problems) = streams(
            "stream create --name a\n\
             stream create --definition \"a | b\"\n\
             stream create --name a --definition \"a | b\n\
             stream create --name a --definition \"a | b\" --platform k8s\n",
        );
        assert!(got.is_empty());
        let e = &problems.errors;
        assert!(e[0].contains("f:1: stream a: `stream create` without --definition"));
        assert!(e[1].contains("f:2: `stream create` without a stream name"));
        assert!(e[2].contains("f:3: unterminated \" quote"));
        assert!(e[3].contains("f:4: `stream create`: unknown option `--platform`"));
    }
}
