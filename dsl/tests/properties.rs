//! Property tests: the parser never panics, and printing round-trips.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use eventflow_dsl::{AppRef, Sink, Source, StreamDefinition, parse};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// Strings made of the DSL's own characters, so that generation reaches deep parser paths.
fn dslish() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c:.|> \\-='\"*/#x]{0,40}").unwrap()
}

/// Definitions glued from DSL fragments: far more of them parse than random characters do.
fn fragments() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("a"),
        Just("b"),
        Just("time"),
        Just("log"),
        Just(" "),
        Just(" "),
        Just(" "),
        Just(":"),
        Just(":d"),
        Just("."),
        Just("|"),
        Just(" | "),
        Just("||"),
        Just(" || "),
        Just(">"),
        Just(" > "),
        Just(" > :"),
        Just(" --k="),
        Just(" --x.y="),
        Just("--"),
        Just("="),
        Just("v"),
        Just("'"),
        Just("''"),
        Just("\""),
        Just("'q ''|'"),
        Just("*"),
        Just("/"),
        Just("#"),
        Just("lbl: "),
        Just("s = "),
        Just("\n"),
        Just("é"),
        Just(";"),
    ];
    vec(fragment, 0..16).prop_map(|parts| parts.concat())
}

/// Printed valid models with a few characters inserted, replaced or removed.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        any::<proptest::sample::Index>(),
        0..3u8,
        proptest::sample::select(vec![
            'a', ':', '.', '|', '>', ' ', '-', '=', '\'', '"', '*', '\n', 'é',
        ]),
    );
    (model(), vec(edit, 0..3)).prop_map(|(def, edits)| {
        let mut chars: Vec<char> = def.to_string().chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => chars[i] = c,
                _ if i < chars.len() => {
                    chars.remove(i);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// App names, labels, argument-name parts: Data Flow identifiers.
fn ident() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_][a-zA-Z0-9_$-]{0,7}").unwrap()
}

fn stream_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z_][a-zA-Z0-9_$-]{0,7}").unwrap()
}

fn key() -> impl Strategy<Value = String> {
    vec(ident(), 1..4).prop_map(|parts| parts.join("."))
}

/// Values with everything awkward: quotes, whitespace, terminators, `=`, `--`, non-ASCII.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ident(),
        proptest::string::string_regex("[a-z'\" |;>=\\-:.()\t\n\r#é]{0,12}").unwrap(),
        any::<String>(),
    ]
}

fn properties() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(key(), value(), 0..4)
}

/// Destination names: parts (identifiers, `*`, `/`, `#`) joined by dots.
fn destination() -> impl Strategy<Value = String> {
    let part = vec(
        prop_oneof![
            ident(),
            Just("*".to_string()),
            Just("/".into()),
            Just("#".into())
        ],
        1..3,
    )
    .prop_map(|pieces| pieces.concat());
    vec(part, 1..4).prop_map(|parts| parts.join("."))
}

fn app() -> impl Strategy<Value = AppRef> {
    (ident(), option::of(ident()), properties()).prop_map(|(name, label, properties)| AppRef {
        label: label.unwrap_or_else(|| name.clone()),
        name,
        properties,
    })
}

/// Models that a definition can express: unique labels, `||` only between two
/// or more apps and without destinations.
fn model() -> impl Strategy<Value = StreamDefinition> {
    (
        option::of(stream_name()),
        vec(app(), 1..5),
        option::of((destination(), properties())),
        option::of(destination()),
        any::<bool>(),
    )
        .prop_map(|(name, mut apps, source, sink, unbound)| {
            let mut seen = BTreeSet::new();
            for app in &mut apps {
                while !seen.insert(app.label.clone()) {
                    app.label.push('x');
                }
            }
            let unbound = unbound && apps.len() > 1 && source.is_none() && sink.is_none();
            StreamDefinition {
                name,
                apps,
                source: source.map(|(destination, properties)| Source {
                    destination,
                    properties,
                }),
                sink: sink.map(|destination| Sink { destination }),
                unbound,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn never_panics_on_any_string(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn never_panics_on_dsl_characters(text in dslish()) {
        let _ = parse(&text);
    }

    #[test]
    fn never_panics_on_fragments(text in prop_oneof![fragments(), mutated()]) {
        let _ = parse(&text);
    }

    #[test]
    fn parsed_fragments_print_back(text in prop_oneof![fragments(), mutated()]) {
        if let Ok(def) = parse(&text) {
            let names = def.apps.iter().flat_map(|a| [&a.name, &a.label]);
            let keys = def.apps.iter().flat_map(|a| a.properties.keys());
            let destinations = def.source.iter().map(|s| &s.destination)
                .chain(def.sink.iter().map(|s| &s.destination));
            for word in names.chain(keys).chain(destinations).chain(def.name.iter()) {
                prop_assert!(!word.is_empty() && !word.contains(char::is_whitespace), "{:?} in {:?}", word, text);
                prop_assert!(!word.ends_with('.') && !word.contains(".."), "{:?} in {:?}", word, text);
            }
            let printed = def.to_string();
            prop_assert_eq!(parse(&printed), Ok(def), "{:?} printed as {:?}", text, printed);
        }
    }

    #[test]
    fn errors_point_inside_the_text(text in prop_oneof![dslish(), fragments(), mutated()]) {
        if let Err(e) = parse(&text) {
            prop_assert!(e.position <= text.chars().count(), "{e} for {text:?}");
        }
    }

    #[test]
    fn printed_models_parse_back(def in model()) {
        let printed = def.to_string();
        prop_assert_eq!(parse(&printed), Ok(def), "printed as {:?}", printed);
    }

    #[test]
    fn parsed_definitions_print_back(text in dslish()) {
        if let Ok(def) = parse(&text) {
            let printed = def.to_string();
            prop_assert_eq!(parse(&printed), Ok(def), "{:?} printed as {:?}", text, printed);
        }
    }

    /// Valid definitions with noise inserted between tokens.
    #[test]
    fn reprinted_models_with_spacing_parse_back(def in model(), pad in "[ \t\n]{1,3}") {
        let printed = def.to_string();
        // Whitespace may be widened wherever the printer put a space outside a quoted value.
        let widened = widen(&printed, &pad);
        prop_assert_eq!(parse(&widened), Ok(def), "{:?}", widened);
    }
}

/// Replaces each space that separates tokens (not inside a quoted value) with `pad`.
fn widen(printed: &str, pad: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = printed.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == '\'' {
            if !quoted && previous == '=' {
                quoted = true;
            } else if quoted && chars.peek() == Some(&'\'') {
                out.push(c);
                out.push(chars.next().unwrap());
                continue;
            } else if quoted {
                quoted = false;
            }
        }
        if c == ' ' && !quoted {
            out.push_str(pad);
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// The generators must reach valid and invalid definitions often enough.
#[test]
fn fragments_often_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop_oneof![fragments(), mutated()];
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..2000 {
        match parse(&strategy.new_tree(&mut runner).unwrap().current()) {
            Ok(_) => ok += 1,
            Err(_) => errors += 1,
        }
    }
    assert!(
        ok > 300 && errors > 300,
        "{ok} of 2000 parse, {errors} do not"
    );
}
