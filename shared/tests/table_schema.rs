//! One table schema: the `Table` resource that `template.yaml` deploys must be the table that
//! `store::schema::TABLE` defines (and `DynamoStore::create_table_if_missing` creates): key
//! schema, attribute definitions, the GSI (name, keys, projection), billing mode, stream view type
//! and TTL attribute. The comparison is checked to notice a change on either side, and the table
//! the store creates (on the DynamoDB at `NATTER_TEST_DYNAMODB_ENDPOINT`) is checked against the
//! schema too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{BillingMode, KeyType, ProjectionType, StreamViewType};
use natter::store::schema::{self, TableDefinition, TABLE};
use serde_yaml::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// `template.yaml`, CloudFormation tags (`!Ref`, `!GetAtt`, `!Sub`) kept as tagged values.
fn template() -> Value {
    let path = "template.yaml";
    let text = std::fs::read_to_string(repo_file(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// A table's schema in plain strings, comparable whichever side it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Schema {
    /// (attribute, HASH | RANGE), in order.
    key_schema: Vec<(String, String)>,
    /// (attribute, S | N | B).
    attribute_definitions: BTreeSet<(String, String)>,
    /// Index name → (key schema, projection type, non-key attributes).
    global_secondary_indexes: BTreeMap<String, Index>,
    billing_mode: String,
    /// `None` when the stream is off.
    stream_view_type: Option<String>,
    /// `None` when TTL is off.
    ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    key_schema: Vec<(String, String)>,
    projection_type: String,
    non_key_attributes: Vec<String>,
}

/// The properties of the template's `Table` that are not part of the schema (they are not
/// CreateTable parameters the store sends). Any other property fails the test, so that a new
/// schema-relevant one (a local index, provisioned throughput, …) is not silently ignored.
const NOT_SCHEMA: [&str; 2] = ["PointInTimeRecoverySpecification", "SSESpecification"];
const SCHEMA_PROPERTIES: [&str; 6] = [
    "KeySchema",
    "AttributeDefinitions",
    "GlobalSecondaryIndexes",
    "BillingMode",
    "StreamSpecification",
    "TimeToLiveSpecification",
];

fn text(value: &Value, what: &str) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
        .to_string()
}

fn yaml_key_schema(value: &Value, what: &str) -> Vec<(String, String)> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {value:?}"))
        .iter()
        .map(|k| {
            (
                text(&k["AttributeName"], "AttributeName"),
                text(&k["KeyType"], "KeyType"),
            )
        })
        .collect()
}

/// The `Table` resource of a template: its logical id is `Table` and it is the only
/// `AWS::DynamoDB::Table`.
fn table_resource(template: &Value) -> &Value {
    let resources = template["Resources"]
        .as_mapping()
        .expect("template has Resources");
    let tables: Vec<&Value> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        tables,
        vec![&Value::from("Table")],
        "the template should deploy exactly one table, `Table`"
    );
    &template["Resources"]["Table"]
}

/// The schema of the template's table. Panics on a shape it does not understand.
fn from_template(template: &Value) -> Result<Schema, String> {
    let props = &table_resource(template)["Properties"];
    let names: BTreeSet<String> = props
        .as_mapping()
        .expect("Table has Properties")
        .keys()
        .map(|k| text(k, "property name"))
        .collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !SCHEMA_PROPERTIES.contains(&n.as_str()) && !NOT_SCHEMA.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Table has properties this test does not compare: {unknown:?} (compare them with \
             store::schema::TABLE, or list them in NOT_SCHEMA)"
        ));
    }
    let attribute_definitions = props["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions is a list")
        .iter()
        .map(|a| {
            (
                text(&a["AttributeName"], "AttributeName"),
                text(&a["AttributeType"], "AttributeType"),
            )
        })
        .collect();
    let global_secondary_indexes = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .map(|s| s.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|gsi| {
            let projection = &gsi["Projection"];
            let non_key_attributes = projection["NonKeyAttributes"]
                .as_sequence()
                .map(|s| s.iter().map(|a| text(a, "NonKeyAttributes")).collect())
                .unwrap_or_default();
            (
                text(&gsi["IndexName"], "IndexName"),
                Index {
                    key_schema: yaml_key_schema(&gsi["KeySchema"], "an index's KeySchema"),
                    projection_type: text(&projection["ProjectionType"], "ProjectionType"),
                    non_key_attributes,
                },
            )
        })
        .collect();
    let ttl = &props["TimeToLiveSpecification"];
    let ttl_attribute =
        (ttl["Enabled"].as_bool() == Some(true)).then(|| text(&ttl["AttributeName"], "TTL"));
    let stream = &props["StreamSpecification"];
    Ok(Schema {
        key_schema: yaml_key_schema(&props["KeySchema"], "KeySchema"),
        attribute_definitions,
        global_secondary_indexes,
        // CloudFormation's default is PROVISIONED.
        billing_mode: props["BillingMode"]
            .as_str()
            .unwrap_or("PROVISIONED")
            .to_string(),
        stream_view_type: (!stream.is_null())
            .then(|| text(&stream["StreamViewType"], "StreamViewType")),
        ttl_attribute,
    })
}

fn key_schema(elements: &[schema::KeyElement]) -> Vec<(String, String)> {
    elements
        .iter()
        .map(|k| {
            (
                k.attribute_name.to_string(),
                k.key_type.as_str().to_string(),
            )
        })
        .collect()
}

/// The schema module's table definition in the same terms.
fn from_schema(table: &TableDefinition) -> Schema {
    Schema {
        key_schema: key_schema(&table.key_schema),
        attribute_definitions: table
            .attribute_definitions
            .iter()
            .map(|a| {
                (
                    a.attribute_name.to_string(),
                    a.attribute_type.as_str().to_string(),
                )
            })
            .collect(),
        global_secondary_indexes: table
            .global_secondary_indexes
            .iter()
            .map(|i| {
                (
                    i.index_name.to_string(),
                    Index {
                        key_schema: key_schema(&i.key_schema),
                        projection_type: i.projection_type.as_str().to_string(),
                        non_key_attributes: Vec::new(),
                    },
                )
            })
            .collect(),
        billing_mode: table.billing_mode.as_str().to_string(),
        stream_view_type: Some(table.stream_view_type.as_str().to_string()),
        ttl_attribute: Some(table.ttl_attribute.to_string()),
    }
}

#[test]
fn the_template_deploys_the_schema_modules_table() {
    let deployed = from_template(&template()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        deployed,
        from_schema(&TABLE),
        "template.yaml's Table differs from store::schema::TABLE (left: template)"
    );
    // The names the stores use are the ones in the table definition.
    assert_eq!(deployed.key_schema[0].0, schema::PK);
    assert_eq!(deployed.key_schema[1].0, schema::SK);
    assert_eq!(deployed.ttl_attribute.as_deref(), Some(schema::EXPIRES_AT));
    let gsi = &deployed.global_secondary_indexes[schema::GSI1];
    assert_eq!(gsi.key_schema[0].0, schema::GSI1_PK);
    assert_eq!(gsi.key_schema[1].0, schema::GSI1_SK);
}

/// Sets the value at `path` (mapping keys, or list indices as numbers) in the template.
fn set(template: &mut Value, path: &[&str], to: Value) {
    let mut at = template;
    for step in path {
        at = match step.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*step],
        };
    }
    *at = to;
}

#[test]
fn a_change_to_the_template_is_noticed() {
    let table = ["Resources", "Table", "Properties"];
    let path = |rest: &[&'static str]| -> Vec<&'static str> {
        table.iter().chain(rest).copied().collect::<Vec<_>>()
    };
    let changes: Vec<(Vec<&str>, Value)> =
        vec![
        (path(&["KeySchema", "0", "AttributeName"]), "id".into()),
        (path(&["KeySchema", "1", "KeyType"]), "HASH".into()),
        (path(&["AttributeDefinitions", "2", "AttributeType"]), "N".into()),
        (
            path(&["AttributeDefinitions"]),
            serde_yaml::from_str(
                "[{AttributeName: pk, AttributeType: S}, {AttributeName: sk, AttributeType: S}, \
                 {AttributeName: gsi1pk, AttributeType: S}]",
            )
            .unwrap(),
        ),
        (path(&["GlobalSecondaryIndexes", "0", "IndexName"]), "byUser".into()),
        (
            path(&["GlobalSecondaryIndexes", "0", "KeySchema", "0", "AttributeName"]),
            "pk".into(),
        ),
        (
            path(&["GlobalSecondaryIndexes", "0", "Projection", "ProjectionType"]),
            "KEYS_ONLY".into(),
        ),
        (
            path(&["GlobalSecondaryIndexes", "0", "Projection", "NonKeyAttributes"]),
            serde_yaml::from_str("[userId]").unwrap(),
        ),
        (path(&["BillingMode"]), "PROVISIONED".into()),
        (path(&["StreamSpecification", "StreamViewType"]), "NEW_IMAGE".into()),
        (path(&["TimeToLiveSpecification", "AttributeName"]), "ttl".into()),
        (path(&["TimeToLiveSpecification", "Enabled"]), false.into()),
        (path(&["LocalSecondaryIndexes"]), serde_yaml::from_str("[]").unwrap()),
    ];
    let expected = from_schema(&TABLE);
    for (at, to) in changes {
        let mut changed = template();
        set(&mut changed, &at, to.clone());
        if let Ok(deployed) = from_template(&changed) {
            assert_ne!(
                deployed, expected,
                "setting {at:?} to {to:?} in the template went unnoticed"
            );
        }
    }
}

#[test]
fn a_change_to_the_schema_module_is_noticed() {
    let deployed = from_template(&template()).unwrap_or_else(|e| panic!("{e}"));
    type Change = fn(&mut TableDefinition);
    let changes: Vec<(&str, Change)> = vec![
        ("table key", |t| t.key_schema[0].attribute_name = "id"),
        ("key type", |t| t.key_schema[1].key_type = KeyType::Hash),
        ("attribute", |t| {
            t.attribute_definitions[3].attribute_name = "x"
        }),
        ("index name", |t| {
            t.global_secondary_indexes[0].index_name = "byUser"
        }),
        ("index key", |t| {
            t.global_secondary_indexes[0].key_schema[1].attribute_name = "sk"
        }),
        ("projection", |t| {
            t.global_secondary_indexes[0].projection_type = ProjectionType::KeysOnly
        }),
        ("billing", |t| t.billing_mode = BillingMode::Provisioned),
        ("stream", |t| t.stream_view_type = StreamViewType::NewImage),
        ("ttl", |t| t.ttl_attribute = "ttl"),
    ];
    for (what, change) in changes {
        let mut table = TABLE;
        change(&mut table);
        assert_ne!(
            deployed,
            from_schema(&table),
            "a changed {what} went unnoticed"
        );
    }
}

/// The table `create_table_if_missing` made, as DynamoDB describes it, is the schema's.
#[tokio::test]
async fn the_store_creates_the_schema_modules_table() {
    let h = common::Harness::dynamodb("table_schema").await;
    let d = h.dynamo.as_ref().expect("a DynamoDB harness");
    let described = d
        .client
        .describe_table()
        .table_name(&d.table)
        .send()
        .await
        .expect("DescribeTable");
    let t = described.table().expect("a table description");
    let pairs = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect()
    };
    let ttl = d
        .client
        .describe_time_to_live()
        .table_name(&d.table)
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    let created = Schema {
        key_schema: pairs(t.key_schema()),
        attribute_definitions: t
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_string(),
                    a.attribute_type().as_str().to_string(),
                )
            })
            .collect(),
        global_secondary_indexes: t
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let projection = i.projection().expect("an index projection");
                (
                    i.index_name().unwrap_or_default().to_string(),
                    Index {
                        key_schema: pairs(i.key_schema()),
                        projection_type: projection
                            .projection_type()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default(),
                        non_key_attributes: projection.non_key_attributes().to_vec(),
                    },
                )
            })
            .collect(),
        billing_mode: t
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_string())
            .unwrap_or_else(|| "PROVISIONED".to_string()),
        stream_view_type: t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_string()),
        ttl_attribute: ttl
            .time_to_live_status()
            .filter(|s| s.as_str() == "ENABLED" || s.as_str() == "ENABLING")
            .and(ttl.attribute_name())
            .map(str::to_string),
    };
    assert_eq!(
        created,
        from_schema(&TABLE),
        "left: the table the store created"
    );
}
