//! `kubectl eventflow dsl parse`: a definition's parse as JSON.

use serde::Serialize;
use serde_json::json;

/// `{"error":{"position":N,"message":"…"}}`, in that order.
#[derive(Serialize)]
struct Failed {
    error: eventflow_dsl::ParseError,
}

/// Exit code of a definition that does not parse.
pub const PARSE_FAILED: u8 = 2;

/// The JSON to print and the exit code: the model and 0, or
/// `{"error":{"position":N,"message":"…"}}` and [`PARSE_FAILED`].
pub fn parse(definition: &str) -> (String, u8) {
    let printed = match eventflow_dsl::parse(definition) {
        // The model's fields in their order: apps, source, sink, unbound.
        Ok(model) => serde_json::to_string(&model).map(|json| (json, 0)),
        Err(error) => serde_json::to_string(&Failed { error }).map(|json| (json, PARSE_FAILED)),
    };
    // Serializing strings and maps cannot fail; say so if it does.
    printed.unwrap_or_else(|e| {
        let message = format!("cannot print the parse: {e}");
        (
            json!({"error": {"position": 0, "message": message}}).to_string(),
            PARSE_FAILED,
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_json_with_position_and_message_and_exit_2() {
        let (out, code) = parse("time | ");
        assert_eq!(code, PARSE_FAILED);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["error"]["position"].is_u64());
        assert!(v["error"]["message"].is_string());
        assert!(out.starts_with("{\"error\":{\"position\":"), "{out}");
    }

    #[test]
    fn a_definition_is_printed_as_its_model() {
        let (out, code) = parse("time | log");
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apps"][0]["name"], "time");
        assert_eq!(v["apps"][1]["label"], "log");
        assert_eq!(v["unbound"], false);
        assert!(out.starts_with("{\"apps\":"), "{out}");
    }
}
