//! The configuration parser: any text, and any values under the keys it knows.

use super::{any_text, bytes, cases, text_of};
use hookgate::config::{Config, ConfigError};
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use toml::{Table, Value};

/// `${SET}` resolves, `${EMPTY}` to nothing, anything else is unset.
fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("whsec_c2VjcmV0".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Parses, and requires the outcome to be one the caller can report: a config with at least
/// one source, a syntax error, or a non-empty list of problems.
fn parse(text: &str) -> Result<(), TestCaseError> {
    match Config::parse("prop.toml", text, &env) {
        Ok(config) => prop_assert!(!config.sources.is_empty()),
        Err(ConfigError::Syntax { message, .. }) => prop_assert!(!message.is_empty()),
        Err(ConfigError::Invalid { problems, .. }) => prop_assert!(!problems.is_empty()),
        Err(ConfigError::Read { .. }) => prop_assert!(false, "parse reads no file"),
    }
    Ok(())
}

/// What a key holds, and for text the words it may hold: the good, the borderline and the
/// wrong, so that generated configs get past the types into validation.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Text(&'static [&'static str]),
    List(&'static [&'static str]),
    Integer,
    Float,
    Bool,
}

const ADDRESSES: &[&str] = &["127.0.0.1:0", "0.0.0.0:8080", "[::1]:0", "nowhere", ""];
const DURATIONS: &[&str] = &[
    "0",
    "10s",
    "5m",
    "250ms",
    "1h",
    "-1s",
    "1.5s",
    "1ns",
    "18446744073709551615s",
    "99999999999999999999h",
    "soon",
];
const SIZES: &[&str] = &[
    "1MiB",
    "64MiB",
    "65MiB",
    "0B",
    "0",
    "1.5 KiB",
    "1e30EiB",
    "18446744073709551615 EiB",
    "lots",
];
const NAMES: &[&str] = &[
    "github",
    "a-name",
    "x_1",
    "Bad Name",
    "",
    "é",
    "a123456789012345678901234567890123456789012345678901234567890123",
];
const SECRETS: &[&str] = &[
    "whsec_c2VjcmV0",
    "whsec_!!",
    "s3cret",
    "",
    "${SET}",
    "${EMPTY}",
    "${UNSET}",
    "$${SET}",
    "${",
    "${bad-name}",
];
const PROVIDERS: &[&str] = &[
    "stripe", "github", "standard", "shopify", "slack", "hmac", "hmac", "paypal",
];
const TEMPLATES: &[&str] = &[
    "{body}",
    "{timestamp}.{body}",
    "{id}.{timestamp}.{body}",
    "v0:{timestamp}:{body}",
    "{body}{body}",
    "{body",
    "{nope}{body}",
    "{timestamp}",
    "é{body}}",
];
const HEADERS: &[&str] = &["X-Signature", "x-timestamp", "X-Id", "bad header", "", "é"];
const URLS: &[&str] = &[
    "http://127.0.0.1:9/hook",
    "https://x/",
    "postgres://127.0.0.1/db",
    "redis://127.0.0.1",
    "rediss://x",
    "mysql://x",
    "${SET}",
    "",
];

const TOP: &[Key] = &[
    ("listen", OPT, Shape::Text(ADDRESSES)),
    ("admin_listen", OPT, Shape::Text(ADDRESSES)),
    (
        "database_url",
        REQ,
        Shape::Text(&["postgres://127.0.0.1/db", "postgresql://x", "mysql://x"]),
    ),
    ("database_pool_size", OPT, Shape::Integer),
    (
        "redis_url",
        REQ,
        Shape::Text(&["redis://127.0.0.1", "rediss://x", "http://x"]),
    ),
    (
        "stream_prefix",
        OPT,
        Shape::Text(&["hookgate", "", "a b", "a{b}", "é"]),
    ),
    ("metrics_need_token", OPT, Shape::Bool),
    ("alert_webhook_url", OPT, Shape::Text(URLS)),
];
const RETRY: &[Key] = &[
    ("max_attempts", OPT, Shape::Integer),
    ("initial_delay", OPT, Shape::Text(DURATIONS)),
    ("multiplier", OPT, Shape::Float),
    ("max_delay", OPT, Shape::Text(DURATIONS)),
    ("jitter", OPT, Shape::Float),
];
const WORKER: &[Key] = &[
    ("concurrency", OPT, Shape::Integer),
    ("visibility_timeout", OPT, Shape::Text(DURATIONS)),
    ("schedule_interval", OPT, Shape::Text(DURATIONS)),
    ("shutdown_deadline", OPT, Shape::Text(DURATIONS)),
];
const TOKEN: &[Key] = &[
    ("name", REQ, Shape::Text(NAMES)),
    (
        "token",
        REQ,
        Shape::Text(&["0123456789abcdef-token", "short", "${SET}", ""]),
    ),
    (
        "scopes",
        REQ,
        Shape::List(&["read", "replay", "delete", ""]),
    ),
];
const SOURCE: &[Key] = &[
    ("name", REQ, Shape::Text(NAMES)),
    ("provider", REQ, Shape::Text(PROVIDERS)),
    ("secrets", OPT, Shape::List(SECRETS)),
    ("max_body", OPT, Shape::Text(SIZES)),
    ("tolerance", OPT, Shape::Text(DURATIONS)),
    ("signature_header", OPT, Shape::Text(HEADERS)),
    (
        "algorithm",
        OPT,
        Shape::Text(&["sha1", "sha256", "sha512", "md5"]),
    ),
    ("encoding", OPT, Shape::Text(&["hex", "base64", "base32"])),
    ("prefix", OPT, Shape::Text(&["sha256=", "", " v1=", "é"])),
    ("signed_content", OPT, Shape::Text(TEMPLATES)),
    ("timestamp_header", OPT, Shape::Text(HEADERS)),
    ("dead_letter_alert", OPT, Shape::Integer),
];
const EVENT_ID: &[Key] = &[
    ("header", OPT, Shape::Text(HEADERS)),
    (
        "json_pointer",
        OPT,
        Shape::Text(&["/id", "/data/id", "id", "", "/~2"]),
    ),
    ("body_sha256", OPT, Shape::Bool),
];
const DESTINATION: &[Key] = &[
    ("name", REQ, Shape::Text(NAMES)),
    ("url", OPT, Shape::Text(URLS)),
    ("stream", OPT, Shape::Text(&["audit", ""])),
    ("timeout", OPT, Shape::Text(DURATIONS)),
    ("secret", OPT, Shape::Text(SECRETS)),
];

/// A key, how often it is set, and what it holds.
type Key = (&'static str, f64, Shape);
/// Keys serde (or a usable config) requires are nearly always set, or most configs would stop
/// at the first missing one.
const REQ: f64 = 0.995;
const OPT: f64 = 0.6;

/// Any TOML value at all.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any_text(16).prop_map(Value::String),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key(), inner), 0..3).prop_map(|pairs| Value::Table(pairs.into_iter().collect())),
        ]
    })
}

/// A value of `shape`, now and then one of any type.
fn value_of(shape: Shape) -> BoxedStrategy<Value> {
    let string = |words: &'static [&'static str]| select(words).prop_map(str::to_string);
    let typed = match shape {
        Shape::Text(words) => string(words).prop_map(Value::String).boxed(),
        Shape::List(words) => vec(string(words).prop_map(Value::String), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        Shape::Integer => prop_oneof![30 => 0i64..=120, 1 => any::<i64>()]
            .prop_map(Value::Integer)
            .boxed(),
        Shape::Float => prop_oneof![4 => -0.5f64..=1.5, 2 => 1.0f64..=1001.0, 1 => any::<f64>()]
            .prop_map(Value::Float)
            .boxed(),
        Shape::Bool => any::<bool>().prop_map(Value::Boolean).boxed(),
    };
    prop_oneof![200 => typed, 1 => value()].boxed()
}

/// A key no table knows, or a known one in the wrong table.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        text_of(10, &["a", "z", "_", "-", "é"]),
        select(SOURCE).prop_map(|(key, _, _)| key.to_string()),
    ]
}

/// A table holding some of `keys`, and now and then a key it does not know.
fn table(keys: &'static [Key]) -> impl Strategy<Value = Table> {
    let values: Vec<_> = keys
        .iter()
        .map(|(_, presence, shape)| weighted(*presence, value_of(*shape)))
        .collect();
    (values, weighted(0.02, (key(), value()))).prop_map(move |(values, unknown)| {
        let mut table: Table = keys
            .iter()
            .zip(values)
            .filter_map(|((key, _, _), value)| Some((key.to_string(), value?)))
            .collect();
        table.extend(unknown);
        table
    })
}

/// `key = sub-table` in `table`, when there is one.
fn nest(table: &mut Table, key: &str, sub: Option<Table>) {
    if let Some(sub) = sub {
        table.insert(key.to_string(), Value::Table(sub));
    }
}

/// `[[key]]` entries in `table`, when there are any.
fn nest_all(table: &mut Table, key: &str, entries: Vec<Table>) {
    if !entries.is_empty() {
        let entries = entries.into_iter().map(Value::Table).collect();
        table.insert(key.to_string(), Value::Array(entries));
    }
}

fn destination() -> impl Strategy<Value = Table> {
    let header = select(HEADERS).prop_map(str::to_string);
    let headers = vec(
        (header, value_of(Shape::Text(&["builds", "", "é", "a\nb"]))),
        0..3,
    );
    (table(DESTINATION), weighted(0.3, headers)).prop_map(|(mut destination, headers)| {
        nest(&mut destination, "headers", headers.map(Table::from_iter));
        destination
    })
}

fn source() -> impl Strategy<Value = Table> {
    (
        table(SOURCE),
        weighted(0.4, table(EVENT_ID)),
        weighted(0.3, table(RETRY)),
        vec(destination(), 0..3),
    )
        .prop_map(|(mut source, event_id, retry, destinations)| {
            nest(&mut source, "event_id", event_id);
            nest(&mut source, "retry", retry);
            nest_all(&mut source, "destinations", destinations);
            source
        })
}

/// A source as most are written: a name, a preset, secrets, and now and then one key more.
fn plain_source() -> impl Strategy<Value = Table> {
    let extra = select(SOURCE).prop_flat_map(|(key, _, shape)| (Just(key), value_of(shape)));
    let name = select(&["github", "a-name", "x_1"][..]);
    let provider = select(&["stripe", "github", "standard", "shopify", "slack"][..]);
    let secrets = value_of(Shape::List(&["s3cret", "whsec_c2VjcmV0", "${SET}"]));
    (name, provider, secrets, weighted(0.5, extra)).prop_map(|(name, provider, secrets, extra)| {
        let mut source = Table::new();
        source.insert("name".into(), name.into());
        source.insert("provider".into(), provider.into());
        source.insert("secrets".into(), secrets);
        source.extend(extra.map(|(key, value)| (key.to_string(), value)));
        source
    })
}

/// A whole config; or, half the time, the two URLs and sources alone, which valid configs are
/// mostly made of.
fn config() -> impl Strategy<Value = Table> {
    let sources_only = vec(prop_oneof![plain_source(), source()], 1..3).prop_map(|sources| {
        let mut top = Table::new();
        top.insert("database_url".into(), "postgres://127.0.0.1/db".into());
        top.insert("redis_url".into(), "redis://127.0.0.1".into());
        nest_all(&mut top, "sources", sources);
        top
    });
    prop_oneof![sources_only, whole_config()]
}

fn whole_config() -> impl Strategy<Value = Table> {
    (
        table(TOP),
        weighted(0.3, table(RETRY)),
        weighted(0.3, table(WORKER)),
        vec(table(TOKEN), 0..3),
        vec(source(), 0..4),
    )
        .prop_map(|(mut top, retry, worker, tokens, sources)| {
            nest(&mut top, "retry", retry);
            nest(&mut top, "worker", worker);
            nest_all(&mut top, "admin_tokens", tokens);
            nest_all(&mut top, "sources", sources);
            top
        })
}

/// Lines a config is made of, and lines it is not.
fn line() -> impl Strategy<Value = String> {
    let key = prop_oneof![select(TOP), select(SOURCE), select(RETRY)].prop_map(|(key, _, _)| key);
    let word = prop_oneof![
        select(PROVIDERS),
        select(DURATIONS),
        select(SECRETS),
        select(URLS)
    ];
    let literal = text_of(
        16,
        &[
            "-", "1", "0", ".", "e", "+", "a", "[", "]", "{", "}", "\"", ",", " ", "=", "'",
        ],
    );
    let table = select(
        &[
            "[[sources]]",
            "[retry]",
            "[worker]",
            "[[admin_tokens]]",
            "[[sources.destinations]]",
            "[sources.event_id]",
            "[sources.retry]",
            "[[sources]",
            "[sources]",
            "",
        ][..],
    );
    prop_oneof![
        4 => (key.clone(), word).prop_map(|(k, w)| format!("{k} = {w:?}")),
        2 => (key, literal).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => table.prop_map(str::to_string),
        1 => any_text(30),
    ]
}

proptest! {
    #![proptest_config(cases(40_000))]

    #[test]
    fn any_text_is_a_config_or_a_reported_error(
        text in prop_oneof![
            vec(line(), 0..12).prop_map(|lines| lines.join("\n")),
            any_text(120),
            bytes(120).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        parse(&text)?;
    }
}

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn any_values_under_the_known_keys_are_a_config_or_a_reported_error(config in config()) {
        let text = toml::to_string(&config).unwrap();
        parse(&text)?;
    }
}
