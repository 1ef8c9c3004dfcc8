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

use natter::config::{
    self, aws, connections, fanout, input, sizes, stream, Config, Limits, Roles, SECS_PER_DAY,
};
use serde_yaml::Value;

mod common;
use common::repo::{load_yaml, read};

/// A value without its CloudFormation tag (`!Ref Name` → `Name`).
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

/// Numbers compare by value (YAML's `30` and `30.0` alike), everything else exactly.
fn same(found: &Value, expected: &Value) -> bool {
    match (untagged(found).as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => untagged(found) == expected,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) if text.is_empty() => "\"\"".to_string(),
        Value::String(text) => text.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The expected numbers, one `location = value` a line (the value in YAML; `#` starts a
/// comment line).
fn parse_expected(text: &str) -> BTreeMap<String, Value> {
    let mut expected = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (at, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not `location = value`: {line}"));
        let value: Value = serde_yaml::from_str(value).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            expected.insert(at.to_string(), value).is_none(),
            "{at} is mapped twice in this test"
        );
    }
    expected
}

/// Checks what `document` says against what this test expects; panics with every difference.
fn compare(document: &str, found: &BTreeMap<String, Value>, expected: &BTreeMap<String, Value>) {
    let mut problems = Vec::new();
    for (at, value) in found {
        match expected.get(at) {
            None => problems.push(format!(
                "{at} = {} is not mapped to a limit: add it to this test with its value from \
                 natter::config",
                show(value)
            )),
            Some(e) if !same(value, e) => problems.push(format!(
                "{at} = {}, but natter::config says {}",
                show(value),
                show(e)
            )),
            Some(_) => {}
        }
    }
    for at in expected.keys() {
        if !found.contains_key(at) {
            problems.push(format!("{at} is mapped here but not in {document}"));
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

/// Every bound of the OpenAPI document, and the limit it stands for.
fn openapi_expected() -> BTreeMap<String, Value> {
    let l = Limits::default();
    parse_expected(&format!(
        "
        # Parameters (1 as a minimum: natter refuses an empty or zero one).
        components/parameters/Emoji/schema/minLength = 1
        components/parameters/Emoji/schema/maxLength = {custom_emoji_max_chars}
        components/parameters/Limit/schema/minimum = 1
        components/parameters/Limit/schema/maximum = {max_page}
        components/parameters/Limit/schema/default = {default_page}
        components/parameters/InboxLimit/schema/minimum = 1
        components/parameters/InboxLimit/schema/maximum = {max_inbox_page}
        components/parameters/InboxLimit/schema/default = {max_inbox_page}
        components/parameters/ConversationLimit/schema/minimum = 1
        components/parameters/ConversationLimit/schema/maximum = {max_page}
        components/parameters/ConversationLimit/schema/default = {default_conversation_page}
        components/schemas/ConversationSnapshot/properties/unreadMessageCount/minimum = 0
        components/schemas/ConversationSnapshot/properties/unreadMessageCount/maximum = {max_unread_count}
        # Ids: path parameters, `before`, senders, participants, recipients, mentions; roles.
        components/schemas/Id/minLength = 1
        components/schemas/Id/maxLength = {max_id_chars}
        components/schemas/Role/minLength = 1
        components/schemas/Role/maxLength = {max_id_chars}
        components/schemas/SendMessageRequest/properties/idempotencyKey/minLength = 1
        components/schemas/SendMessageRequest/properties/idempotencyKey/maxLength = {max_id_chars}
        # `custom`.
        components/schemas/Custom/maxProperties = {max_custom_keys}
        components/schemas/Custom/propertyNames/minLength = 1
        components/schemas/Custom/propertyNames/maxLength = {max_custom_key_chars}
        components/schemas/CustomPatch/propertyNames/minLength = 1
        components/schemas/CustomPatch/propertyNames/maxLength = {max_custom_key_chars}
        # Users and conversations.
        components/schemas/PutUserRequest/properties/name/maxLength = {max_name_chars}
        components/schemas/PutUserRequest/properties/photoUrl/maxLength = {max_name_chars}
        components/schemas/PutConversationRequest/properties/subject/maxLength = {max_name_chars}
        components/schemas/PutConversationRequest/properties/photoUrl/maxLength = {max_name_chars}
        components/schemas/PutConversationRequest/properties/participants/maxItems = {max_participants_per_request}
        # Messages and reactions (a shown reaction was added at least once).
        components/schemas/SendMessageRequest/properties/text/minLength = 1
        components/schemas/EditMessageRequest/properties/text/minLength = 1
        components/schemas/ImportMessage/properties/text/minLength = 1
        components/schemas/ImportRequest/minItems = 1
        components/schemas/ImportRequest/maxItems = {max_import_messages}
        components/schemas/MessageSnapshot/properties/reactions/maxItems = {max_distinct_reactions}
        components/schemas/ReactionSnapshot/properties/count/minimum = 1
        # Content nodes: a custom emoji as in reactions, a mention with some text.
        components/schemas/CustomEmojiNode/properties/text/maxLength = {custom_emoji_max_chars}
        components/schemas/MentionNode/properties/text/minLength = 1
        # Inbox.
        components/schemas/SendInboxRequest/properties/recipients/oneOf/1/minItems = 1
        components/schemas/SendInboxRequest/properties/recipients/oneOf/1/maxItems = {max_inbox_recipients}
        # Content blocks: facts of the world, not natter's limits (content.rs checks them).
        # Nothing to send or edit is refused: no block, a text block without children, no field.
        components/schemas/Content/minItems = 1
        components/schemas/TextBlock/properties/children/minItems = 1
        components/schemas/EditMessageRequest/minProperties = 1
        # A file block names its file (content.rs refuses an empty url or filename); its url is a
        # StoredUrl.
        components/schemas/StoredUrl/minLength = 1
        components/schemas/FileBlock/properties/filename/minLength = 1
        # The ranges of its number types (u64 size, u32 width and height, duration >= 0).
        components/schemas/FileBlock/properties/size/maximum = {u64_max}
        components/schemas/FileBlock/properties/width/minimum = 0
        components/schemas/FileBlock/properties/width/maximum = {u32_max}
        components/schemas/FileBlock/properties/height/minimum = 0
        components/schemas/FileBlock/properties/height/maximum = {u32_max}
        components/schemas/FileBlock/properties/duration/minimum = 0
        components/schemas/FileBlock/properties/size/minimum = 0
        components/schemas/LocationBlock/properties/latitude/minimum = -90
        components/schemas/LocationBlock/properties/latitude/maximum = 90
        components/schemas/LocationBlock/properties/longitude/minimum = -180
        components/schemas/LocationBlock/properties/longitude/maximum = 180
        ",
        custom_emoji_max_chars = input::CUSTOM_EMOJI_MAX_CHARS,
        max_page = l.max_page,
        default_page = l.default_page,
        default_conversation_page = l.default_conversation_page,
        max_unread_count = l.max_unread_count,
        max_id_chars = l.max_id_chars,
        max_custom_keys = l.max_custom_keys,
        max_custom_key_chars = l.max_custom_key_chars,
        max_name_chars = l.max_name_chars,
        max_participants_per_request = l.max_participants_per_request,
        max_import_messages = l.max_import_messages,
        max_distinct_reactions = l.max_distinct_reactions,
        max_inbox_recipients = l.max_inbox_recipients,
        max_inbox_page = l.max_inbox_page,
        u64_max = u64::MAX,
        u32_max = u32::MAX,
    ))
}

#[test]
fn openapi_bounds_are_the_config_limits() {
    compare("docs/openapi.yaml", &openapi_bounds(), &openapi_expected());
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

/// The fan-out's event source mapping: its settings that natter's stream constants mirror.
const STREAM: &str = "Resources/FanOutFunction/Properties/Events/Stream/Properties";
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
    let properties =
        &template["Resources"]["FanOutFunction"]["Properties"]["Events"]["Stream"]["Properties"];
    for key in STREAM_SETTINGS {
        if let Some(value) = properties.get(*key) {
            found.insert(format!("{STREAM}/{key}"), value.clone());
        }
    }
    found
}

fn template_expected() -> BTreeMap<String, Value> {
    parse_expected(&format!(
        "
        # Only a value to change after editing a secret (the authorizers then re-read them).
        Parameters/SecretsRevision/Default = \"1\"
        Parameters/RetentionDays/Default = {default_retention_days}
        # RETENTION_DAYS must be positive (checked against Config below).
        Parameters/RetentionDays/MinValue = 1
        Parameters/FanOutConcurrency/Default = {default_concurrency}
        Parameters/FanOutConcurrency/MinValue = {min_concurrency}
        Parameters/FanOutConcurrency/MaxValue = {max_concurrency}
        Parameters/FanOutMemorySize/Default = {default_memory_mb}
        Parameters/FanOutMemorySize/MinValue = {min_memory_mb}
        Parameters/FanOutMemorySize/MaxValue = {max_memory_mb}
        # An empty NATTER_ROLES is the built-in roles (checked against Config below).
        Parameters/RolesJson/Default = \"\"
        {STREAM}/BatchSize = {batch_size}
        {STREAM}/MaximumRetryAttempts = {max_retry_attempts}
        {STREAM}/MaximumRecordAgeInSeconds = {max_record_age_secs}
        ",
        default_retention_days = config::DEFAULT_RETENTION_DAYS,
        default_concurrency = fanout::DEFAULT_CONCURRENCY,
        min_concurrency = fanout::MIN_CONCURRENCY,
        max_concurrency = fanout::MAX_CONCURRENCY,
        default_memory_mb = fanout::DEFAULT_MEMORY_MB,
        min_memory_mb = fanout::MIN_MEMORY_MB,
        max_memory_mb = fanout::MAX_MEMORY_MB,
        batch_size = stream::BATCH_SIZE,
        max_retry_attempts = stream::MAX_RETRY_ATTEMPTS,
        max_record_age_secs = stream::MAX_RECORD_AGE_SECS,
    ))
}

#[test]
fn template_parameters_and_stream_settings_are_the_config_values() {
    let template = load_yaml("template.yaml");
    compare(
        "template.yaml",
        &template_bounds(&template),
        &template_expected(),
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
    assert_eq!(
        untagged(&template["Resources"]["FanOutFunction"]["Properties"]["MemorySize"]).as_str(),
        Some("FanOutMemorySize")
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

/// The rows of every `| what | limit |` table in `text` from `start` up to `end`.
fn table_rows(text: &str, start: &str, end: &str) -> BTreeMap<String, Value> {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} section"));
    let section = &text[from..];
    let section = &section[..section.find(end).unwrap_or(section.len())];
    assert!(
        section.contains("| what | limit |"),
        "no limits table after {start:?}"
    );
    rows_of(section)
}

/// `what` → `limit` for every `| what | limit |` line of `text` (headers and rules skipped).
fn rows_of(text: &str) -> BTreeMap<String, Value> {
    let mut rows = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if !line.starts_with('|') || line == "| what | limit |" || line.starts_with("|---") {
            continue;
        }
        let (what, limit) = line
            .strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .and_then(|row| row.split_once(" | "))
            .unwrap_or_else(|| panic!("a limits row without two cells: {line}"));
        let duplicate = rows.insert(what.to_string(), Value::from(limit));
        assert!(duplicate.is_none(), "limit row {what:?} twice");
    }
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

#[test]
fn the_readme_limits_tables_are_the_config_values() {
    let l = Limits::default();
    let c = Config::default();
    let expected = format!(
        "
        | request body | {body} (413) |
        | message content, serialized as JSON | {content} (413) |
        | message text before parsing | {text} (413) |
        | `custom` | {custom_keys} keys (400), keys of 1..{custom_key_chars} characters (400), string values of at most {custom_value} (413) |
        | ids (users, conversations, messages, idempotency keys, subscriptions, roles) | 1..{id} characters and at most {id_bytes} bytes of UTF-8, no control characters, no `#` or `/` (400) |
        | names, subjects, photo URLs | {name} characters (400) |
        | participants named in one conversation PUT | {participants} (400) |
        | messages per import | 1..{import} (400) |
        | `limit` on the message list | 1..{max_page}, default {default_page} (400) |
        | distinct reactions per message | {reactions} (409 `limit_exceeded`) |
        | custom emoji reaction `:name:` | {custom_emoji} characters, colons included (400) |
        | content nesting | {depth} levels (400) |
        | inbox message, serialized as JSON | {inbox} (413) |
        | inbox recipients | 1..{recipients} (400) |
        | `limit` on the inbox list; inbox messages per `hello` / `inboxMore` | 1..{inbox_page}, default {inbox_page} (400) |
        | WebSocket `limit` / `loadMore` `count` | 1..{max_page}, default {default_page} |
        | `limit` on a user's conversation list, `subscribeConversations` `limit` | 1..{max_page}, default {conversation_page} (400) |
        | `unreadMessageCount` | counts up to {unread} ({unread} means {unread} or more) |
        | WebSocket `requestId`, as JSON | {request_id} (`invalid_request`, not echoed) |
        | a message in frames, as JSON | {frame_message}; a larger one is sent as `{{id, conversationId, truncated: true}}` |
        | an HTTP response, as the Lambda response | {http_response} (6 MB less {http_reserve} kept free); a page stops early |
        | subscriptions per connection | {subscriptions} (`limit_exceeded`) |
        | a closed connection's id as a recent client id | {grace} |
        | fan-out posts in flight (`FANOUT_CONCURRENCY`) | {min_concurrency}..{max_concurrency}, default {concurrency} |
        | retention of messages, reactions, inbox messages (`RETENTION_DAYS`) | {retention} days |
        | retention of users, conversations, participants (`RECORD_RETENTION_DAYS`) | {record_retention} days after the last write |
        | API Gateway WebSocket message, either way | {ws_message}, in frames of up to {ws_frame} (natter-local enforces the {ws_message}) |
        | API Gateway WebSocket connection | closed after {ws_life} (natter-local too) |
        | API Gateway WebSocket idle connection | closed after {ws_idle} without a client frame (natter-local too; `--ws-idle-timeout` shortens it); clients `ping` at least every 9 minutes |
        | Lambda invocation payload, request and response | {lambda_payload} |
        | DynamoDB item | {item} |
        | DynamoDB `TransactWriteItems` | {transaction} items |
        | DynamoDB `BatchGetItem` | {batch_get} keys |
        | DynamoDB `BatchWriteItem` | {batch_write} writes |
        | DynamoDB `IN` in a condition | {in_operands} operands |
        ",
        body = size(l.max_body_bytes),
        content = size(l.max_content_bytes),
        text = size(l.max_text_bytes),
        custom_keys = l.max_custom_keys,
        custom_key_chars = l.max_custom_key_chars,
        custom_value = size(l.max_custom_value_bytes),
        id = l.max_id_chars,
        id_bytes = input::ID_MAX_BYTES,
        name = l.max_name_chars,
        participants = l.max_participants_per_request,
        import = l.max_import_messages,
        max_page = l.max_page,
        default_page = l.default_page,
        conversation_page = l.default_conversation_page,
        unread = l.max_unread_count,
        reactions = l.max_distinct_reactions,
        custom_emoji = input::CUSTOM_EMOJI_MAX_CHARS,
        depth = input::CONTENT_MAX_DEPTH,
        inbox = size(l.max_inbox_message_bytes),
        recipients = l.max_inbox_recipients,
        inbox_page = l.max_inbox_page,
        request_id = size(sizes::REQUEST_ID_MAX_BYTES),
        frame_message = size(sizes::FRAME_MESSAGE_MAX_BYTES),
        http_response = size(sizes::HTTP_RESPONSE_MAX_BYTES),
        http_reserve = size(sizes::HTTP_RESPONSE_RESERVE_BYTES),
        subscriptions = connections::MAX_SUBSCRIPTIONS_PER_CONNECTION,
        grace = duration(connections::CLIENT_ID_GRACE_SECS),
        min_concurrency = fanout::MIN_CONCURRENCY,
        max_concurrency = fanout::MAX_CONCURRENCY,
        concurrency = fanout::DEFAULT_CONCURRENCY,
        retention = c.retention_secs / SECS_PER_DAY,
        record_retention = c.record_retention_secs / SECS_PER_DAY,
        ws_message = aws_size(aws::WS_MESSAGE_MAX_BYTES),
        ws_frame = aws_size(aws::WS_FRAME_MAX_BYTES),
        ws_life = duration(aws::WS_CONNECTION_MAX_SECS),
        ws_idle = duration(aws::WS_IDLE_TIMEOUT_SECS),
        lambda_payload = aws_size(aws::LAMBDA_PAYLOAD_MAX_BYTES),
        item = aws_size(aws::DYNAMODB_ITEM_MAX_BYTES),
        transaction = aws::DYNAMODB_TRANSACTION_MAX_ITEMS,
        batch_get = aws::DYNAMODB_BATCH_GET_MAX_KEYS,
        batch_write = aws::DYNAMODB_BATCH_WRITE_MAX_ITEMS,
        in_operands = aws::DYNAMODB_IN_MAX_OPERANDS,
    );
    let readme = read("README.md");
    compare(
        "README.md (Limits)",
        &table_rows(&readme, "### Limits", "\n## "),
        &rows_of(&expected),
    );
}

#[test]
fn the_openapi_limits_table_is_the_config_values() {
    let l = Limits::default();
    let expected = format!(
        "
        | request body | {body} (413 beyond) |
        | message content, serialized as JSON | {content} |
        | message `text` | {text} |
        | `custom` | at most {custom_keys} keys of at most {custom_key_chars} characters, string values of at most {custom_value} |
        | ids (users, conversations, messages, idempotency keys) | 1 to {id} characters and at most {id_bytes} bytes of UTF-8; no control characters, no `#` or `/` |
        | names, subjects, photo URLs | at most {name} characters |
        | participants named in one conversation PUT | {participants} |
        | messages in one import | 1 to {import} |
        | page size (`limit`) | 1 to {max_page}, default {default_page} |
        | distinct reactions on one message | {reactions} |
        | custom emoji reaction `:name:` | at most {custom_emoji} characters, colons included |
        | inbox message, serialized as JSON | {inbox} |
        | inbox recipients | 1 to {recipients} |
        | inbox page size (`limit`) | 1 to {inbox_page}, default {inbox_page} |
        ",
        body = size(l.max_body_bytes),
        content = size(l.max_content_bytes),
        text = size(l.max_text_bytes),
        custom_keys = l.max_custom_keys,
        custom_key_chars = l.max_custom_key_chars,
        custom_value = size(l.max_custom_value_bytes),
        id = l.max_id_chars,
        id_bytes = input::ID_MAX_BYTES,
        name = l.max_name_chars,
        participants = l.max_participants_per_request,
        import = l.max_import_messages,
        max_page = l.max_page,
        default_page = l.default_page,
        reactions = l.max_distinct_reactions,
        custom_emoji = input::CUSTOM_EMOJI_MAX_CHARS,
        inbox = size(l.max_inbox_message_bytes),
        recipients = l.max_inbox_recipients,
        inbox_page = l.max_inbox_page,
    );
    let doc = load_yaml("docs/openapi.yaml");
    let description = doc["info"]["description"]
        .as_str()
        .expect("openapi info has a description");
    compare(
        "docs/openapi.yaml (info: Limits)",
        &table_rows(description, "**Limits**", "**Errors**"),
        &rows_of(&expected),
    );
}
