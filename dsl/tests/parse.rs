//! The parser against every construct of the stream DSL and every refusal,
//! with Data Flow's documentation examples and the cases of its parser tests.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use eventflow_dsl::{AppRef, ParseError, Sink, Source, StreamDefinition, parse};

fn app(name: &str) -> AppRef {
    labelled(name, name)
}

fn labelled(label: &str, name: &str) -> AppRef {
    AppRef {
        name: name.into(),
        label: label.into(),
        properties: BTreeMap::new(),
    }
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn with(mut app: AppRef, pairs: &[(&str, &str)]) -> AppRef {
    app.properties = props(pairs);
    app
}

fn stream(apps: Vec<AppRef>) -> StreamDefinition {
    StreamDefinition {
        name: None,
        apps,
        source: None,
        sink: None,
        unbound: false,
    }
}

fn source(destination: &str) -> Option<Source> {
    Some(Source {
        destination: destination.into(),
        properties: BTreeMap::new(),
    })
}

fn sink(destination: &str) -> Option<Sink> {
    Some(Sink {
        destination: destination.into(),
    })
}

/// Parses, and checks that the printed definition parses to the same model.
fn ok(text: &str) -> StreamDefinition {
    let def = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let printed = def.to_string();
    assert_eq!(parse(&printed), Ok(def.clone()), "printed as {printed:?}");
    def
}

/// Asserts the error's character position and a fragment of its message.
#[track_caller]
fn err(text: &str, position: usize, fragment: &str) {
    match parse(text) {
        Ok(def) => panic!("{text:?} parsed as {def:?}"),
        Err(ParseError {
            position: p,
            message,
        }) => {
            assert_eq!(p, position, "{text:?}: {message}");
            assert!(
                message.contains(fragment),
                "{text:?}: {message:?} lacks {fragment:?}"
            );
        }
    }
}

fn value(text: &str, app_index: usize, key: &str) -> String {
    ok(text).apps[app_index].properties[key].clone()
}

// ---- The documentation's examples -------------------------------------------------------------

#[test]
fn doc_pipeline_with_an_expression() {
    assert_eq!(
        ok("time | transform --expression=payload.toUpperCase() | log"),
        stream(vec![
            app("time"),
            with(app("transform"), &[("expression", "payload.toUpperCase()")]),
            app("log"),
        ])
    );
}

#[test]
fn doc_two_apps() {
    assert_eq!(ok("http | log"), stream(vec![app("http"), app("log")]));
}

#[test]
fn doc_named_destination_source() {
    let mut expected = stream(vec![app("audit")]);
    expected.source = source("orders");
    assert_eq!(ok(":orders > audit"), expected);
}

#[test]
fn doc_tap() {
    let def = ok(":ticktock.transform > counter");
    let mut expected = stream(vec![app("counter")]);
    expected.source = source("ticktock.transform");
    assert_eq!(def, expected);
    assert_eq!(
        def.source.as_ref().and_then(|s| s.tap()),
        Some(("ticktock", "transform"))
    );
}

#[test]
fn doc_label() {
    assert_eq!(
        ok("lbl: transform"),
        stream(vec![labelled("lbl", "transform")])
    );
}

#[test]
fn doc_bridge() {
    let mut expected = stream(vec![app("bridge")]);
    expected.source = source("a");
    expected.sink = sink("b");
    assert_eq!(ok(":a > :b"), expected);
    assert_eq!(ok(":a>:b"), expected);
    assert_eq!(ok(":a > bridge > :b"), expected);
}

#[test]
fn doc_unbound() {
    let mut expected = stream(vec![app("a"), app("b")]);
    expected.unbound = true;
    assert_eq!(ok("a || b"), expected);
}

#[test]
fn doc_quoted_query() {
    assert_eq!(
        ok("jdbc --query='select * from t where x=''y''' | log"),
        stream(vec![
            with(app("jdbc"), &[("query", "select * from t where x='y'")]),
            app("log"),
        ])
    );
}

#[test]
fn doc_sink_destination() {
    let mut expected = stream(vec![app("time")]);
    expected.sink = sink("ticks");
    assert_eq!(ok("time > :ticks"), expected);
}

#[test]
fn doc_source_destination() {
    let mut expected = stream(vec![app("log")]);
    expected.source = source("ticks");
    assert_eq!(ok(":ticks > log"), expected);
}

#[test]
fn doc_source_destination_arguments() {
    let mut expected = stream(vec![app("log")]);
    expected.source = Some(Source {
        destination: "d".into(),
        properties: props(&[("group", "g")]),
    });
    assert_eq!(ok(":d --group=g > log"), expected);
    let def = ok(":test --group=test > file");
    assert_eq!(def.source.unwrap().properties, props(&[("group", "test")]));
}

// ---- Shape -------------------------------------------------------------------------------------

#[test]
fn single_app_is_not_unbound() {
    assert_eq!(ok("time"), stream(vec![app("time")]));
    assert_eq!(ok("  time \t"), stream(vec![app("time")]));
}

#[test]
fn hyphens_underscores_digits_and_dollars_in_names() {
    assert_eq!(
        ok("gemfire-cq | a_b | 1x | x$y"),
        stream(vec![app("gemfire-cq"), app("a_b"), app("1x"), app("x$y")])
    );
}

#[test]
fn stream_name() {
    let mut expected = stream(vec![app("time"), app("log")]);
    expected.name = Some("ticktock".into());
    assert_eq!(ok("ticktock = time | log"), expected);
    assert_eq!(ok("ticktock=time|log"), expected);
    assert_eq!(ok("ticktock =time | log"), expected);
    assert_eq!(ok("bar = foo | bar").name.as_deref(), Some("bar"));
    assert_eq!(ok("foo-bar = a").name.as_deref(), Some("foo-bar"));
    assert_eq!(ok("_x = a").name.as_deref(), Some("_x"));
}

#[test]
fn named_bridge_and_named_unbound() {
    let def = ok("s = :a > :b");
    assert_eq!(def.name.as_deref(), Some("s"));
    assert_eq!(def.apps, vec![app("bridge")]);
    let def = ok("s = a || b || c");
    assert!(def.unbound);
    assert_eq!(def.apps.len(), 3);
}

#[test]
fn source_and_sink() {
    let mut expected = stream(vec![app("transform")]);
    expected.source = source("in");
    expected.sink = sink("out");
    assert_eq!(ok(":in > transform > :out"), expected);
    assert_eq!(ok(":in>transform>:out"), expected);
}

#[test]
fn bridge_with_source_arguments() {
    let def = ok(":a --x=1 > :b");
    assert_eq!(def.apps, vec![app("bridge")]);
    assert_eq!(def.source.unwrap().properties, props(&[("x", "1")]));
}

#[test]
fn destination_names() {
    for (text, name) in [
        (":a/ > file", "a/"),
        (":a/*# > file", "a/*#"),
        (":foo.* > file", "foo.*"),
        (":*foo > file", "*foo"),
        (":a-b_c.d-e > file", "a-b_c.d-e"),
        (":x.y.z > file", "x.y.z"),
        (":0 > file", "0"),
    ] {
        assert_eq!(ok(text).source.unwrap().destination, name, "{text}");
    }
    for (text, name) in [
        ("http > :foo/", "foo/"),
        ("http > :foo/*#", "foo/*#"),
        ("http > :foo.*", "foo.*"),
    ] {
        assert_eq!(ok(text).sink.unwrap().destination, name, "{text}");
    }
}

#[test]
fn labels() {
    assert_eq!(
        ok("food = http | label3: foo").apps,
        vec![app("http"), labelled("label3", "foo")]
    );
    assert_eq!(
        ok("http | foo: bar | file").apps,
        vec![app("http"), labelled("foo", "bar"), app("file")]
    );
    assert_eq!(
        ok("file | out: file").apps,
        vec![app("file"), labelled("out", "file")]
    );
    // A label equal to the app name is the default label.
    assert_eq!(ok("transform: transform"), ok("transform"));
    let def = ok("wibble: http > :bar");
    assert_eq!(def.apps, vec![labelled("wibble", "http")]);
    assert_eq!(def.sink, sink("bar"));
}

#[test]
fn unbound_lists() {
    let def = ok("foo|| bar|| baz");
    assert!(def.unbound);
    assert_eq!(def.apps, vec![app("foo"), app("bar"), app("baz")]);
    assert!(!ok("foo | bar").unbound);
    let def = ok("foo --aaa=,|| bar");
    assert_eq!(
        def.apps,
        vec![with(app("foo"), &[("aaa", ",")]), app("bar")]
    );
    for text in [
        "foo --aaa=bbb || bar",
        "foo --aaa=bbb|| bar",
        "foo --aaa=\"bbb\"|| bar",
        "foo --aaa='bbb' || bar",
    ] {
        let def = ok(text);
        assert!(def.unbound, "{text}");
        assert_eq!(
            def.apps,
            vec![with(app("foo"), &[("aaa", "bbb")]), app("bar")],
            "{text}"
        );
    }
    let def = ok("aaa --bbb='ccc'|| bbb");
    assert_eq!(def.apps[0].properties["bbb"], "ccc");
}

// ---- Arguments ---------------------------------------------------------------------------------

#[test]
fn arguments() {
    assert_eq!(
        ok("foo --name=value --x=y").apps,
        vec![with(app("foo"), &[("name", "value"), ("x", "y")])]
    );
    assert_eq!(
        ok("gemfire-cq --query='Select * from /Stocks where symbol=''VMW''' --regionName=foo --foo=bar")
            .apps[0]
            .properties,
        props(&[
            ("query", "Select * from /Stocks where symbol='VMW'"),
            ("regionName", "foo"),
            ("foo", "bar"),
        ])
    );
    assert_eq!(
        ok("foo --x=1 --y=two ").apps[0].properties,
        props(&[("x", "1"), ("y", "two")])
    );
    assert_eq!(
        ok("foo --x=1a2b").apps[0].properties,
        props(&[("x", "1a2b")])
    );
}

#[test]
fn dotted_and_dashed_keys() {
    assert_eq!(
        ok("app --spring.cloud.stream.bindings.input.group=g --server-port=8080").apps[0]
            .properties,
        props(&[
            ("spring.cloud.stream.bindings.input.group", "g"),
            ("server-port", "8080"),
        ])
    );
}

#[test]
fn repeated_key_keeps_the_last_value() {
    assert_eq!(
        ok("app --a=1 --b=2 --a=3").apps[0].properties,
        props(&[("a", "3"), ("b", "2")])
    );
}

#[test]
fn quoted_values() {
    assert_eq!(value("a --v='it''s'", 0, "v"), "it's");
    assert_eq!(value("a --v=\"say \"\"hi\"\"\"", 0, "v"), "say \"hi\"");
    assert_eq!(value("a --v=''", 0, "v"), "");
    assert_eq!(value("a --v=\"\"", 0, "v"), "");
    assert_eq!(value("a --v='x y' | b", 0, "v"), "x y");
    assert_eq!(value("a --v='x|y;z>w'", 0, "v"), "x|y;z>w");
    assert_eq!(value("a --v=\"it's\"", 0, "v"), "it's");
    assert_eq!(value("a --v='é ü' | b", 0, "v"), "é ü");
}

#[test]
fn unquoted_values_end_at_whitespace_pipe_semicolon_and_gt() {
    assert_eq!(value("a --v=x|b", 0, "v"), "x");
    assert_eq!(value("a --v=x>:d", 0, "v"), "x");
    assert_eq!(value("a --v=--payload | b", 0, "v"), "--payload");
    assert_eq!(value("a --v=x=y,z:w(1)", 0, "v"), "x=y,z:w(1)");
    assert_eq!(value("a --v=ccc,", 0, "v"), "ccc,");
    assert_eq!(value("a --v=é", 0, "v"), "é");
    err("a --v=x;y", 7, "unexpected `;`");
}

/// From Data Flow's `appArguments_xd1613` and neighbours: quotes inside an unquoted value.
#[test]
fn data_flow_expression_values() {
    let t = |text: &str| value(text, 1, "expression");
    assert_eq!(
        t("http | transform --expression='hi'+payload | log"),
        "'hi'+payload"
    );
    assert_eq!(
        t("http | transform --expression=payload+'hi' | log"),
        "payload+'hi'"
    );
    assert_eq!(
        t("http | transform --expression='payload+''hi''' | log"),
        "payload+'hi'"
    );
    assert_eq!(
        t("http | transform --expression='''hi''+payload' | log"),
        "'hi'+payload"
    );
    assert_eq!(
        t("http | transform --expression=\"payload+'hi'\" | log"),
        "payload+'hi'"
    );
    assert_eq!(
        t("http | transform --expression=\"'hi'+payload\" | log"),
        "'hi'+payload"
    );
    assert_eq!(
        t("http | transform --expression=payload+'hi'--param2='foobar' | log"),
        "payload+'hi'--param2='foobar'"
    );
    assert_eq!(
        t("http | transform --expression='hi'+'world' | log"),
        "'hi'+'world'"
    );
    assert_eq!(
        t("http | transform --expression=\"'hi'+'world'\" | log"),
        "'hi'+'world'"
    );
    assert_eq!(t("http | transform --expression='''hi''' | log"), "'hi'");
    assert_eq!(
        t("http | transform --expression=\"''''hi''''\" | log"),
        "''''hi''''"
    );
    assert_eq!(
        t("foo |  transform --expression=\"'Hello, world!'\" | bar"),
        "'Hello, world!'"
    );
    assert_eq!(
        t("foo |  transform --expression='''Hello, world!''' | bar"),
        "'Hello, world!'"
    );
    assert_eq!(
        t("foo |  transform --expression='new StringBuilder(payload).reverse()' | bar"),
        "new StringBuilder(payload).reverse()"
    );
    assert_eq!(
        value(
            "http | filter --expression=payload.matches('hello world') | log",
            1,
            "expression"
        ),
        "payload.matches('hello world')"
    );
    assert_eq!(
        value(
            "http | filter --expression=\"payload == 'foo'\" | log",
            1,
            "expression"
        ),
        "payload == 'foo'"
    );
    assert_eq!(
        value(
            "aaa | filter --expression=#jsonPath(payload,'$.lang')=='en'",
            1,
            "expression"
        ),
        "#jsonPath(payload,'$.lang')=='en'"
    );
    assert_eq!(
        value(
            "http | transform --outputType='text/plain|charset=UTF-8'  | log",
            1,
            "outputType"
        ),
        "text/plain|charset=UTF-8"
    );
    assert_eq!(
        value(
            "http | transform --outputType='text/plain;charset=UTF-8'  | log",
            1,
            "outputType"
        ),
        "text/plain;charset=UTF-8"
    );
    assert_eq!(
        t("http | transform --expression='payload.replace(\"abc\", '''')' | log"),
        "payload.replace(\"abc\", '')"
    );
}

#[test]
fn quoted_values_may_hold_newlines_and_gt() {
    let def = ok(
        ":producer > transform --expression='payload.toUpperCase()' | filter --expression='payload.length() > 4'> :consumer",
    );
    assert_eq!(
        def.apps[0].properties["expression"],
        "payload.toUpperCase()"
    );
    assert_eq!(def.apps[1].properties["expression"], "payload.length() > 4");
    assert_eq!(def.sink, sink("consumer"));
    let def = ok(":producer > foobar --expression='aaa=bbb \n ccc=ddd' > :consumer");
    assert_eq!(def.apps[0].properties["expression"], "aaa=bbb \n ccc=ddd");
    let def = ok(":producer > foobar --expression='aaa=bbb \r ccc=ddd' > :consumer");
    assert_eq!(def.apps[0].properties["expression"], "aaa=bbb \r ccc=ddd");
}

#[test]
fn newlines_are_whitespace() {
    assert_eq!(ok("time |\n  log\n"), stream(vec![app("time"), app("log")]));
}

// ---- Refusals ----------------------------------------------------------------------------------

#[test]
fn empty_definitions() {
    err("", 0, "empty");
    err("   ", 3, "empty");
    err("\n\t", 2, "empty");
}

#[test]
fn missing_app_at_the_end() {
    err("time |", 6, "missing app name after `|`");
    err("time | ", 7, "missing app name after `|`");
    err("foo||", 5, "missing app name after `||`");
    err("foo --aaa=\"bbb\"||", 17, "missing app name after `||`");
    err("foo --aaa=\"bbb\" ||", 18, "missing app name after `||`");
    err("aaa --bbb=ccc||", 15, "missing app name after `||`");
    err("s = ", 4, "missing app name");
    err(":foo >", 6, "missing app name");
    err("lbl:", 4, "missing app name after the label `lbl:`");
    err("lbl: ", 5, "missing app name after the label `lbl:`");
}

#[test]
fn not_an_app_name() {
    err(
        "|",
        0,
        "expected an app name at the start of the stream, found `|`",
    );
    err(".", 0, "expected an app name");
    err(";", 0, "expected an app name");
    err(
        "time | | log",
        7,
        "expected an app name after `|`, found `|`",
    );
    err(":foo > --2323", 7, "found `--`");
    err(":foo > *", 7, "found `*`");
    err(":foo | bar", 0, "found `:`");
    err(":a > :b | c", 5, "found `:`");
    err("'x' | log", 0, "found `'x'`");
    err("x=:a>:b", 2, "expected an app name");
    err("lbl: *", 5, "expected an app name after the label `lbl:`");
}

#[test]
fn unexpected_characters() {
    err(":foo > (", 7, "unexpected character `(`");
    err("( = http | file", 0, "unexpected character `(`");
    err("time | lög", 8, "unexpected character `ö`");
    err(
        "foo | transform --expression=new StringBuilder(payload).reverse() | bar",
        46,
        "`(`",
    );
    err(
        "foo |  transform --expression=''Hello, world!'' | bar",
        44,
        "`!`",
    );
    err("a \\ b", 2, "escape");
    err("a -b", 2, "`--`");
    err("time | log;", 10, "unexpected `;`");
    err("a & b", 2, "unexpected `&`");
}

#[test]
fn positions_are_characters_not_bytes() {
    err("a --v='ééé' | | b", 14, "found `|`");
    err("a --v=ü |", 9, "missing app name");
}

#[test]
fn unterminated_quotes() {
    err("foo | bar --expression='select foo", 23, "never closed");
    err("foo | bar --expression=\"select foo", 23, "never closed");
    err(
        "foo | bar --expression=payload+'x | log",
        31,
        "never closed",
    );
    err("a --v='", 6, "never closed");
    err("a 'x", 2, "never closed");
}

#[test]
fn stream_names() {
    err("* = http | file", 0, "illegal stream name `*`");
    err(": = http | file", 0, "illegal stream name `:`");
    err("0foobar = http", 0, "illegal stream name `0foobar`");
    err("  9 = http", 2, "illegal stream name `9`");
    err("a = b = c", 6, "unexpected `=`");
}

#[test]
fn destinations() {
    err("foo > bar", 6, "a sink destination starts with `:`");
    err("time >", 6, "missing sink destination after `>`");
    err(":foo > :", 8, "missing destination name after `:`");
    err("time > :", 8, "missing destination name after `:`");
    err("::foo > *", 1, "unexpected `:` in a destination name");
    err(
        ": d > log",
        2,
        "no whitespace allowed between `:` and the destination name",
    );
    err(
        ":boo .xx > file",
        5,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo . xx > file",
        5,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo. xx > file",
        6,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo.xx. yy > file",
        9,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo.xx .yy > file",
        8,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo.xx . yy > file",
        8,
        "no whitespace allowed in a destination name",
    );
    err("time > :d.", 10, "cannot end with `.`");
    err(":d.> log", 3, "cannot end with `.`");
    err(":d. > log", 3, "cannot end with `.`");
    err(
        ":boo. * > file",
        6,
        "no whitespace allowed in a destination name",
    );
    err(
        ":boo * > file",
        5,
        "expected `>` after the source destination `:boo`, found `*`",
    );
    err(":a..b > log", 3, "cannot end with `.`");
    err("http > :test value", 13, "unexpected `value`");
    err("trigger > :myjob   too", 19, "unexpected `too`");
    err(":d > :e > app", 8, "unexpected `>`");
    err("a > :d > :e", 7, "unexpected `>`");
    err("log > :d --x=1", 9, "takes no arguments");
    err(
        ":a foo > b",
        3,
        "expected `>` after the source destination `:a`, found `foo`",
    );
    err(":a/--x=1 > log", 3, "whitespace before the argument");
}

#[test]
fn double_pipes() {
    err(":aaa > fff||bbb", 10, "do not use `||`");
    err("fff||bbb > :zzz", 3, "do not use `||`");
    err("a || b || c > :zzz", 7, "do not use `||`");
    err("aaa | bbb|| ccc", 9, "do not mix `|` and `||`");
    err("aaa || bbb| ccc", 10, "do not mix `|` and `||`");
    err(":a > :b || c", 8, "unexpected `||`");
}

#[test]
fn labels_refused() {
    err("http | foo: goggle: bar | file", 12, "at most one label");
    err("http | foo :bar | file", 11, "unexpected `:`");
    err(
        "lbl:transform",
        4,
        "expected whitespace after the label `lbl:`",
    );
}

#[test]
fn duplicate_labels() {
    err("xxx: http | xxx: file", 12, "duplicate app label `xxx`");
    err(
        "xxx: http | yyy: filter | transform | xxx: transform | file",
        38,
        "duplicate app label `xxx`",
    );
    err(
        "http | filter | transform | transform | file",
        28,
        "duplicate app label `transform`: give one of them a label (`other: transform`)",
    );
    err("a: x | a", 7, "duplicate app label `a`");
    err("a || a", 5, "duplicate app label `a`");
    err(":d > t | t > :e", 9, "duplicate app label `t`");
}

#[test]
fn argument_refusals() {
    err(
        "foo -- name=value",
        7,
        "no whitespace allowed between `--` and the argument name",
    );
    err(
        "foo --name =value",
        11,
        "no whitespace allowed between the argument name `--name` and `=`",
    );
    err(
        "foo --name= value",
        12,
        "no whitespace allowed between `--name=` and the value",
    );
    err(
        "foo --name= 'v'",
        12,
        "no whitespace allowed between `--name=` and the value",
    );
    err(
        "foo --name.=value",
        11,
        "expected a name part after `--name.`",
    );
    err(
        "foo --name .sub=value",
        11,
        "no whitespace allowed in the argument name",
    );
    err(
        "foo --name. sub=value",
        12,
        "no whitespace allowed in the argument name",
    );
    err("foo --name.", 11, "missing a name part");
    err("foo --", 6, "missing argument name after `--`");
    err("foo --bar", 9, "missing `=value`");
    err("foo --bar=", 10, "missing value after `--bar=`");
    err(
        "foo --bar x",
        10,
        "expected `=` after the argument name `--bar`",
    );
    err("foo --=x", 6, "expected an argument name after `--`");
    err("foo --'a'=x", 6, "expected an argument name");
    err("test | foo--x=13", 13, "unexpected `=`");
    err(
        "aaa --bbb= --ccc=ddd",
        11,
        "missing value after `--bbb=`, found `--`",
    );
    err("aaa --bbb=| --ccc=ddd", 10, "missing argument value");
    err("aaa --bbb=; --ccc=ddd", 10, "missing argument value");
    err("aaa --bbb=> --ccc=ddd", 10, "missing argument value");
    err("aaa --bbb=\t --ccc=ddd", 12, "missing value after `--bbb=`");
    err("aaa --bbb=\n --ccc=ddd", 12, "missing value after `--bbb=`");
    err("--foo = bar", 0, "expected an app name");
    err("foo bar=yyy", 4, "unexpected `bar`");
    err("foo bar", 4, "unexpected `bar`");
}

// ---- Serialization -----------------------------------------------------------------------------

#[test]
fn json_shape() {
    let def = ok(":d > transform --expression=payload.toUpperCase() > :e");
    assert_eq!(
        serde_json::to_string(&def).unwrap(),
        r#"{"apps":[{"name":"transform","label":"transform","properties":{"expression":"payload.toUpperCase()"}}],"source":{"destination":"d","properties":{}},"sink":{"destination":"e"},"unbound":false}"#
    );
    assert_eq!(
        serde_json::to_string(&ok("s = a || b")).unwrap(),
        r#"{"name":"s","apps":[{"name":"a","label":"a","properties":{}},{"name":"b","label":"b","properties":{}}],"source":null,"sink":null,"unbound":true}"#
    );
}

#[test]
fn error_display() {
    assert_eq!(
        parse("time |").unwrap_err().to_string(),
        "(pos 6): missing app name after `|`"
    );
}
