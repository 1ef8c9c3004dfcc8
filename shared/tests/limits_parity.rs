//! One source of truth for limits: every number that `docs/openapi.yaml`, `template.yaml` and
//! the README give for a limit or a default is the one in `natter::config`.
//!
//! Each documented number is mapped here, one by one, to the value it stands for:
//!
//! - every `maxLength`, `minLength`, `maxItems`, `minItems`, `maxProperties`, `minProperties`,
//!   `maximum`, `minimum`, `exclusiveMaximum`, `exclusiveMinimum`, `multipleOf` and `default` in
//!   the OpenAPI document's `paths` and `components` (route parameters, bodies, responses);
//! - every `Default`, `MinValue`, `MaxValue`, `MinLength`, `MaxLength`, `AllowedValues` and
//!   `AllowedPattern` of the template's parameters, and the stream's batching and retries;
//! - every row of the limit tables in the README and in the OpenAPI description.
//!
//! A documented number that no entry maps fails (so a new bound cannot go unchecked), an entry
//! whose number is gone from the document fails, and a number that differs from the config fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use natter::config::{
    self, aws, connections, fanout, input, stream, Config, Limits, Roles, SECS_PER_DAY,
};
use serde_yaml::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn load_yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// A value without its CloudFormation tag (`!Ref Name` → `Name`).
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::from(
        n.try_into()
            .unwrap_or_else(|_| panic!("a limit does not fit i64")),
    )
}

/// What a documented number should be, and what it stands for (shown when it differs).
struct Expect {
    value: Value,
    what: &'static str,
}

fn expect(value: Value, what: &'static str) -> Expect {
    Expect { value, what }
}

/// Numbers compare by value (YAML's `30` and `30.0` alike), everything else exactly.
fn same(found: &Value, expected: &Value) -> bool {
    match (untagged(found).as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => untagged(found) == expected,
    }
}

fn show(value: &Value) -> String {
    serde_yaml::to_string(value)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Checks the numbers found in `document` against the entries; panics with every difference.
fn compare(document: &str, found: &BTreeMap<String, Value>, entries: Vec<(&'static str, Expect)>) {
    let mut expected = BTreeMap::new();
    for (at, e) in entries {
        assert!(
            expected.insert(at, e).is_none(),
            "{at} is mapped twice in this test"
        );
    }
    let mut problems = Vec::new();
    for (at, value) in found {
        match expected.get(at.as_str()) {
            None => problems.push(format!(
                "{at} = {} is not mapped to a limit: add it to this test with its value from \
                 natter::config",
                show(value)
            )),
            Some(e) if !same(value, &e.value) => problems.push(format!(
                "{at} = {}, but natter::config says {} ({})",
                show(value),
                show(&e.value),
                e.what
            )),
            Some(_) => {}
        }
    }
    for (at, e) in &expected {
        if !found.contains_key(*at) {
            problems.push(format!(
                "{at} ({}) is mapped here but not in {document}",
                e.what
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{document} and natter::config disagree:\n  {}",
        problems.join("\n  ")
    );
}

// ---- docs/openapi.yaml ----

/// The JSON Schema keywords that bound a value or give its default.
const SCHEMA_BOUNDS: &[&str] = &[
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "default",
];

/// A JSON Pointer token (`/` and `~` escaped).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Collects every bound under `value` by its pointer. The children of `properties` are property
/// names (a property may be called `default`), and examples are data, not schemas.
fn collect_bounds(value: &Value, at: &str, in_properties: bool, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: a key is not a string"));
                let child_at = format!("{at}/{}", token(key));
                if in_properties {
                    collect_bounds(child, &child_at, false, out);
                } else if key == "examples" || key == "example" {
                    continue;
                } else if SCHEMA_BOUNDS.contains(&key) && !child.is_mapping() {
                    out.insert(child_at, child.clone());
                } else {
                    collect_bounds(child, &child_at, key == "properties", out);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_bounds(child, &format!("{at}/{i}"), false, out);
            }
        }
        _ => {}
    }
}

fn openapi_bounds() -> BTreeMap<String, Value> {
    let doc = load_yaml("docs/openapi.yaml");
    let mut found = BTreeMap::new();
    for section in ["paths", "components"] {
        assert!(doc[section].is_mapping(), "openapi has {section}");
        collect_bounds(&doc[section], section, false, &mut found);
    }
    found
}

/// Every bound of the OpenAPI document, and what it stands for.
fn openapi_expected() -> Vec<(&'static str, Expect)> {
    let l = Limits::default();
    let id = int(l.max_id_chars);
    let non_empty = || expect(int(1), "not empty: natter refuses an empty one");
    vec![
        // Path and query parameters.
        ("components/parameters/Emoji/schema/minLength", non_empty()),
        (
            "components/parameters/Emoji/schema/maxLength",
            expect(
                int(input::CUSTOM_EMOJI_MAX_CHARS),
                "input::CUSTOM_EMOJI_MAX_CHARS (no Unicode emoji is longer)",
            ),
        ),
        ("components/parameters/Limit/schema/minimum", non_empty()),
        (
            "components/parameters/Limit/schema/maximum",
            expect(int(l.max_page), "Limits::max_page"),
        ),
        (
            "components/parameters/Limit/schema/default",
            expect(int(l.default_page), "Limits::default_page"),
        ),
        // Ids: path parameters, `before`, senders, participants, recipients, mentions.
        ("components/schemas/Id/minLength", non_empty()),
        (
            "components/schemas/Id/maxLength",
            expect(id.clone(), "Limits::max_id_chars"),
        ),
        ("components/schemas/Role/minLength", non_empty()),
        (
            "components/schemas/Role/maxLength",
            expect(
                id.clone(),
                "Limits::max_id_chars (a role is checked as an id)",
            ),
        ),
        (
            "components/schemas/SendMessageRequest/properties/idempotencyKey/minLength",
            non_empty(),
        ),
        (
            "components/schemas/SendMessageRequest/properties/idempotencyKey/maxLength",
            expect(id, "Limits::max_id_chars"),
        ),
        // `custom`.
        (
            "components/schemas/Custom/maxProperties",
            expect(int(l.max_custom_keys), "Limits::max_custom_keys"),
        ),
        (
            "components/schemas/Custom/propertyNames/minLength",
            non_empty(),
        ),
        (
            "components/schemas/Custom/propertyNames/maxLength",
            expect(int(l.max_custom_key_chars), "Limits::max_custom_key_chars"),
        ),
        (
            "components/schemas/CustomPatch/propertyNames/minLength",
            non_empty(),
        ),
        (
            "components/schemas/CustomPatch/propertyNames/maxLength",
            expect(int(l.max_custom_key_chars), "Limits::max_custom_key_chars"),
        ),
        // Names, subjects, photo URLs.
        (
            "components/schemas/PutUserRequest/properties/name/maxLength",
            expect(int(l.max_name_chars), "Limits::max_name_chars"),
        ),
        (
            "components/schemas/PutUserRequest/properties/photoUrl/maxLength",
            expect(int(l.max_name_chars), "Limits::max_name_chars"),
        ),
        (
            "components/schemas/PutConversationRequest/properties/subject/maxLength",
            expect(int(l.max_name_chars), "Limits::max_name_chars"),
        ),
        (
            "components/schemas/PutConversationRequest/properties/photoUrl/maxLength",
            expect(int(l.max_name_chars), "Limits::max_name_chars"),
        ),
        (
            "components/schemas/PutConversationRequest/properties/participants/maxItems",
            expect(
                int(l.max_participants_per_request),
                "Limits::max_participants_per_request",
            ),
        ),
        // Messages.
        (
            "components/schemas/SendMessageRequest/properties/text/minLength",
            non_empty(),
        ),
        (
            "components/schemas/EditMessageRequest/properties/text/minLength",
            non_empty(),
        ),
        (
            "components/schemas/ImportMessage/properties/text/minLength",
            non_empty(),
        ),
        ("components/schemas/ImportRequest/minItems", non_empty()),
        (
            "components/schemas/ImportRequest/maxItems",
            expect(int(l.max_import_messages), "Limits::max_import_messages"),
        ),
        (
            "components/schemas/MessageSnapshot/properties/reactions/maxItems",
            expect(
                int(l.max_distinct_reactions),
                "Limits::max_distinct_reactions",
            ),
        ),
        (
            "components/schemas/ReactionSnapshot/properties/count/minimum",
            expect(int(1), "a shown reaction has been added at least once"),
        ),
        // Inbox.
        (
            "components/schemas/SendInboxRequest/properties/recipients/oneOf/1/minItems",
            non_empty(),
        ),
        (
            "components/schemas/SendInboxRequest/properties/recipients/oneOf/1/maxItems",
            expect(int(l.max_inbox_recipients), "Limits::max_inbox_recipients"),
        ),
        // Content blocks: facts of the world, not natter's limits (content.rs checks them).
        (
            "components/schemas/FileBlock/properties/size/minimum",
            expect(int(0), "a size in bytes is not negative"),
        ),
        (
            "components/schemas/LocationBlock/properties/latitude/minimum",
            expect(int(-90), "latitude in degrees"),
        ),
        (
            "components/schemas/LocationBlock/properties/latitude/maximum",
            expect(int(90), "latitude in degrees"),
        ),
        (
            "components/schemas/LocationBlock/properties/longitude/minimum",
            expect(int(-180), "longitude in degrees"),
        ),
        (
            "components/schemas/LocationBlock/properties/longitude/maximum",
            expect(int(180), "longitude in degrees"),
        ),
    ]
}

#[test]
fn openapi_bounds_are_the_config_limits() {
    compare("docs/openapi.yaml", &openapi_bounds(), openapi_expected());
}

#[test]
fn the_bound_walker_finds_nested_bounds_and_skips_examples_and_property_names() {
    let doc: Value = serde_yaml::from_str(
        r#"
        schemas:
          A:
            properties:
              default: {type: integer, maximum: 3}
              list: {type: array, items: {oneOf: [{minLength: 2}]}}
            examples: [{maximum: 9}]
            default: 1
        "#,
    )
    .unwrap();
    let mut found = BTreeMap::new();
    collect_bounds(&doc, "c", false, &mut found);
    let found: Vec<_> = found.iter().map(|(k, v)| (k.as_str(), show(v))).collect();
    assert_eq!(
        found,
        [
            ("c/schemas/A/default", "1".to_string()),
            ("c/schemas/A/properties/default/maximum", "3".to_string()),
            (
                "c/schemas/A/properties/list/items/oneOf/0/minLength",
                "2".to_string()
            ),
        ]
    );
}

// ---- template.yaml ----

/// The CloudFormation parameter properties that bound a parameter or give its default.
const PARAMETER_BOUNDS: &[&str] = &[
    "Default",
    "MinValue",
    "MaxValue",
    "MinLength",
    "MaxLength",
    "AllowedValues",
    "AllowedPattern",
];

/// The event source mapping settings that natter's stream constants mirror.
const STREAM_SETTINGS: &[&str] = &[
    "BatchSize",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
];

fn template_bounds(template: &Value) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    let parameters = template["Parameters"]
        .as_mapping()
        .expect("template has Parameters");
    for (name, parameter) in parameters {
        let name = name.as_str().expect("parameter name");
        for key in PARAMETER_BOUNDS {
            if let Some(value) = parameter.get(*key) {
                found.insert(format!("Parameters/{name}/{key}"), value.clone());
            }
        }
    }
    let stream = "Resources/FanOutFunction/Properties/Events/Stream/Properties";
    let properties =
        &template["Resources"]["FanOutFunction"]["Properties"]["Events"]["Stream"]["Properties"];
    for key in STREAM_SETTINGS {
        if let Some(value) = properties.get(*key) {
            found.insert(format!("{stream}/{key}"), value.clone());
        }
    }
    found
}

fn template_expected() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "Parameters/SigningSecret/MinLength",
            expect(int(input::SECRET_MIN_CHARS), "input::SECRET_MIN_CHARS"),
        ),
        (
            "Parameters/SecretKey/MinLength",
            expect(int(input::SECRET_MIN_CHARS), "input::SECRET_MIN_CHARS"),
        ),
        (
            "Parameters/RetentionDays/Default",
            expect(
                int(config::DEFAULT_RETENTION_DAYS),
                "config::DEFAULT_RETENTION_DAYS",
            ),
        ),
        (
            "Parameters/RetentionDays/MinValue",
            expect(
                int(1),
                "RETENTION_DAYS must be positive (checked against Config below)",
            ),
        ),
        (
            "Parameters/FanOutConcurrency/Default",
            expect(
                int(fanout::DEFAULT_CONCURRENCY),
                "fanout::DEFAULT_CONCURRENCY",
            ),
        ),
        (
            "Parameters/FanOutConcurrency/MinValue",
            expect(int(fanout::MIN_CONCURRENCY), "fanout::MIN_CONCURRENCY"),
        ),
        (
            "Parameters/FanOutConcurrency/MaxValue",
            expect(int(fanout::MAX_CONCURRENCY), "fanout::MAX_CONCURRENCY"),
        ),
        (
            "Parameters/RolesJson/Default",
            expect(
                Value::from(""),
                "empty NATTER_ROLES: the built-in roles (checked against Config below)",
            ),
        ),
        (
            "Resources/FanOutFunction/Properties/Events/Stream/Properties/BatchSize",
            expect(int(stream::BATCH_SIZE), "stream::BATCH_SIZE"),
        ),
        (
            "Resources/FanOutFunction/Properties/Events/Stream/Properties/MaximumRetryAttempts",
            expect(int(stream::MAX_RETRY_ATTEMPTS), "stream::MAX_RETRY_ATTEMPTS"),
        ),
        (
            "Resources/FanOutFunction/Properties/Events/Stream/Properties/MaximumRecordAgeInSeconds",
            expect(
                int(stream::MAX_RECORD_AGE_SECS),
                "stream::MAX_RECORD_AGE_SECS",
            ),
        ),
    ]
}

#[test]
fn template_parameters_and_stream_settings_are_the_config_values() {
    let template = load_yaml("template.yaml");
    compare(
        "template.yaml",
        &template_bounds(&template),
        template_expected(),
    );
}

#[test]
fn the_template_parameters_reach_the_settings_they_bound() {
    let template = load_yaml("template.yaml");
    let global = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        untagged(&global["RETENTION_DAYS"]).as_str(),
        Some("RetentionDays")
    );
    assert_eq!(
        untagged(&global["NATTER_ROLES"]).as_str(),
        Some("RolesJson")
    );
    let fan_out =
        &template["Resources"]["FanOutFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        untagged(&fan_out["FANOUT_CONCURRENCY"]).as_str(),
        Some("FanOutConcurrency")
    );

    // RetentionDays' MinValue and RolesJson's Default mean to natter what the template says.
    let days = |v: &str| Config::from_lookup(|n| (n == "RETENTION_DAYS").then(|| v.to_string()));
    assert!(days("0").is_err(), "RETENTION_DAYS 0 is refused");
    assert_eq!(days("1").map(|c| c.retention_secs), Ok(SECS_PER_DAY));
    let roles = Config::from_lookup(|n| (n == "NATTER_ROLES").then(String::new)).unwrap();
    assert_eq!(roles.roles, Roles::default());
    assert_eq!(
        Config::default().retention_secs,
        config::DEFAULT_RETENTION_DAYS * SECS_PER_DAY
    );
}

// ---- The limit tables of the README and of the OpenAPI description ----

/// `| what | limit |` rows of every such table in `text` from `start` up to `end`.
fn table_rows(text: &str, start: &str, end: &str) -> BTreeMap<String, Value> {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} section"));
    let section = &text[from..];
    let section = &section[..section.find(end).unwrap_or(section.len())];
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in section.lines().map(str::trim) {
        if line == "| what | limit |" {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let Some(row) = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')) else {
            in_table = false;
            continue;
        };
        let (what, limit) = row
            .split_once(" | ")
            .unwrap_or_else(|| panic!("a limits row without two cells: {line}"));
        let what = what.trim().to_string();
        let duplicate = rows.insert(what.clone(), Value::from(limit.trim()));
        assert!(duplicate.is_none(), "limit row {what:?} twice");
    }
    assert!(!rows.is_empty(), "no limits table after {start:?}");
    rows
}

/// `1048576` → `1 MiB`, `65536` → `64 KiB`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b % (1024 * 1024) == 0 => format!("{} MiB", b / (1024 * 1024)),
        b if b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}

/// Sizes as AWS writes them: `128 KB`, `6 MB` (`config::aws` counts them in 1024s).
fn aws_size(bytes: usize) -> String {
    size(bytes).replace("KiB", "KB").replace("MiB", "MB")
}

/// `7200` → `2 hours`, `600` → `10 minutes`.
fn duration(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn text(what: &'static str, value: String) -> Expect {
    expect(Value::from(value), what)
}

fn readme_expected() -> Vec<(&'static str, Expect)> {
    let l = Limits::default();
    let c = Config::default();
    vec![
        ("request body", text("Limits::max_body_bytes", format!("{} (413)", size(l.max_body_bytes)))),
        (
            "message content, serialized as JSON",
            text("Limits::max_content_bytes", format!("{} (413)", size(l.max_content_bytes))),
        ),
        (
            "message text before parsing",
            text("Limits::max_text_bytes", format!("{} (413)", size(l.max_text_bytes))),
        ),
        (
            "`custom`",
            text(
                "Limits::max_custom_keys, max_custom_key_chars, max_custom_value_bytes",
                format!(
                    "{} keys (400), keys of 1..{} characters (400), string values of at most {} (413)",
                    l.max_custom_keys,
                    l.max_custom_key_chars,
                    size(l.max_custom_value_bytes)
                ),
            ),
        ),
        (
            "ids (users, conversations, messages, idempotency keys, subscriptions, roles)",
            text(
                "Limits::max_id_chars",
                format!(
                    "1..{} characters, no control characters, no `#` or `/` (400)",
                    l.max_id_chars
                ),
            ),
        ),
        (
            "names, subjects, photo URLs",
            text("Limits::max_name_chars", format!("{} characters (400)", l.max_name_chars)),
        ),
        (
            "participants named in one conversation PUT",
            text(
                "Limits::max_participants_per_request",
                format!("{} (400)", l.max_participants_per_request),
            ),
        ),
        (
            "messages per import",
            text("Limits::max_import_messages", format!("1..{} (400)", l.max_import_messages)),
        ),
        (
            "`limit` on the message list",
            text(
                "Limits::max_page, default_page",
                format!("1..{}, default {} (400)", l.max_page, l.default_page),
            ),
        ),
        (
            "distinct reactions per message",
            text(
                "Limits::max_distinct_reactions",
                format!("{} (409 `limit_exceeded`)", l.max_distinct_reactions),
            ),
        ),
        (
            "custom emoji reaction `:name:`",
            text(
                "input::CUSTOM_EMOJI_MAX_CHARS",
                format!(
                    "{} characters, colons included (400)",
                    input::CUSTOM_EMOJI_MAX_CHARS
                ),
            ),
        ),
        (
            "content nesting",
            text(
                "input::CONTENT_MAX_DEPTH",
                format!("{} levels (400)", input::CONTENT_MAX_DEPTH),
            ),
        ),
        (
            "inbox message, serialized as JSON",
            text(
                "Limits::max_inbox_message_bytes",
                format!("{} (413)", size(l.max_inbox_message_bytes)),
            ),
        ),
        (
            "inbox recipients",
            text("Limits::max_inbox_recipients", format!("1..{} (400)", l.max_inbox_recipients)),
        ),
        (
            "WebSocket `limit` / `loadMore` `count`",
            text(
                "Limits::max_page, default_page",
                format!("1..{}, default {}", l.max_page, l.default_page),
            ),
        ),
        (
            "subscriptions per connection",
            text(
                "connections::MAX_SUBSCRIPTIONS_PER_CONNECTION",
                format!(
                    "{} (`limit_exceeded`)",
                    connections::MAX_SUBSCRIPTIONS_PER_CONNECTION
                ),
            ),
        ),
        (
            "a closed connection's id as a recent client id",
            text(
                "connections::CLIENT_ID_GRACE_SECS",
                duration(connections::CLIENT_ID_GRACE_SECS),
            ),
        ),
        (
            "fan-out posts in flight (`FANOUT_CONCURRENCY`)",
            text(
                "fanout::MIN_CONCURRENCY, MAX_CONCURRENCY, DEFAULT_CONCURRENCY",
                format!(
                    "{}..{}, default {}",
                    fanout::MIN_CONCURRENCY,
                    fanout::MAX_CONCURRENCY,
                    fanout::DEFAULT_CONCURRENCY
                ),
            ),
        ),
        (
            "retention of messages, reactions, inbox messages (`RETENTION_DAYS`)",
            text(
                "config::DEFAULT_RETENTION_DAYS",
                format!("{} days", c.retention_secs / SECS_PER_DAY),
            ),
        ),
        (
            "retention of users, conversations, participants (`RECORD_RETENTION_DAYS`)",
            text(
                "config::DEFAULT_RECORD_RETENTION_DAYS",
                format!(
                    "{} days after the last write",
                    c.record_retention_secs / SECS_PER_DAY
                ),
            ),
        ),
        // Imposed by AWS.
        (
            "API Gateway WebSocket message, either way",
            text(
                "aws::WS_MESSAGE_MAX_BYTES, WS_FRAME_MAX_BYTES",
                format!(
                    "{}, in frames of up to {} (natter-local enforces the {})",
                    aws_size(aws::WS_MESSAGE_MAX_BYTES),
                    aws_size(aws::WS_FRAME_MAX_BYTES),
                    aws_size(aws::WS_MESSAGE_MAX_BYTES)
                ),
            ),
        ),
        (
            "API Gateway WebSocket connection",
            text(
                "aws::WS_CONNECTION_MAX_SECS",
                format!(
                    "closed after {} (natter-local too)",
                    duration(aws::WS_CONNECTION_MAX_SECS)
                ),
            ),
        ),
        (
            "API Gateway WebSocket idle connection",
            text(
                "aws::WS_IDLE_TIMEOUT_SECS",
                format!(
                    "closed after {} without a client frame (natter-local does not)",
                    duration(aws::WS_IDLE_TIMEOUT_SECS)
                ),
            ),
        ),
        (
            "Lambda invocation payload, request and response",
            text("aws::LAMBDA_PAYLOAD_MAX_BYTES", aws_size(aws::LAMBDA_PAYLOAD_MAX_BYTES)),
        ),
        (
            "DynamoDB item",
            text("aws::DYNAMODB_ITEM_MAX_BYTES", aws_size(aws::DYNAMODB_ITEM_MAX_BYTES)),
        ),
        (
            "DynamoDB `TransactWriteItems`",
            text(
                "aws::DYNAMODB_TRANSACTION_MAX_ITEMS",
                format!("{} items", aws::DYNAMODB_TRANSACTION_MAX_ITEMS),
            ),
        ),
        (
            "DynamoDB `BatchGetItem`",
            text(
                "aws::DYNAMODB_BATCH_GET_MAX_KEYS",
                format!("{} keys", aws::DYNAMODB_BATCH_GET_MAX_KEYS),
            ),
        ),
        (
            "DynamoDB `BatchWriteItem`",
            text(
                "aws::DYNAMODB_BATCH_WRITE_MAX_ITEMS",
                format!("{} writes", aws::DYNAMODB_BATCH_WRITE_MAX_ITEMS),
            ),
        ),
        (
            "DynamoDB `IN` in a condition",
            text(
                "aws::DYNAMODB_IN_MAX_OPERANDS",
                format!("{} operands", aws::DYNAMODB_IN_MAX_OPERANDS),
            ),
        ),
    ]
}

#[test]
fn the_readme_limits_tables_are_the_config_values() {
    let readme = read("README.md");
    let rows = table_rows(&readme, "### Limits", "\n## ");
    compare("README.md (Limits)", &rows, readme_expected());
}

fn openapi_table_expected() -> Vec<(&'static str, Expect)> {
    let l = Limits::default();
    vec![
        (
            "request body",
            text(
                "Limits::max_body_bytes",
                format!("{} (413 beyond)", size(l.max_body_bytes)),
            ),
        ),
        (
            "message content, serialized as JSON",
            text("Limits::max_content_bytes", size(l.max_content_bytes)),
        ),
        (
            "message `text`",
            text("Limits::max_text_bytes", size(l.max_text_bytes)),
        ),
        (
            "`custom`",
            text(
                "Limits::max_custom_keys, max_custom_key_chars, max_custom_value_bytes",
                format!(
                    "at most {} keys of at most {} characters, string values of at most {}",
                    l.max_custom_keys,
                    l.max_custom_key_chars,
                    size(l.max_custom_value_bytes)
                ),
            ),
        ),
        (
            "ids (users, conversations, messages, idempotency keys)",
            text(
                "Limits::max_id_chars",
                format!(
                    "1 to {} characters; no control characters, no `#` or `/`",
                    l.max_id_chars
                ),
            ),
        ),
        (
            "names, subjects, photo URLs",
            text(
                "Limits::max_name_chars",
                format!("at most {} characters", l.max_name_chars),
            ),
        ),
        (
            "participants named in one conversation PUT",
            text(
                "Limits::max_participants_per_request",
                l.max_participants_per_request.to_string(),
            ),
        ),
        (
            "messages in one import",
            text(
                "Limits::max_import_messages",
                format!("1 to {}", l.max_import_messages),
            ),
        ),
        (
            "page size (`limit`)",
            text(
                "Limits::max_page, default_page",
                format!("1 to {}, default {}", l.max_page, l.default_page),
            ),
        ),
        (
            "distinct reactions on one message",
            text(
                "Limits::max_distinct_reactions",
                l.max_distinct_reactions.to_string(),
            ),
        ),
        (
            "custom emoji reaction `:name:`",
            text(
                "input::CUSTOM_EMOJI_MAX_CHARS",
                format!(
                    "at most {} characters, colons included",
                    input::CUSTOM_EMOJI_MAX_CHARS
                ),
            ),
        ),
        (
            "inbox message, serialized as JSON",
            text(
                "Limits::max_inbox_message_bytes",
                size(l.max_inbox_message_bytes),
            ),
        ),
        (
            "inbox recipients",
            text(
                "Limits::max_inbox_recipients",
                format!("1 to {}", l.max_inbox_recipients),
            ),
        ),
    ]
}

#[test]
fn the_openapi_limits_table_is_the_config_values() {
    let doc = load_yaml("docs/openapi.yaml");
    let description = doc["info"]["description"]
        .as_str()
        .expect("openapi info has a description");
    let rows = table_rows(description, "**Limits**", "**Errors**");
    compare(
        "docs/openapi.yaml (info: Limits)",
        &rows,
        openapi_table_expected(),
    );
}
