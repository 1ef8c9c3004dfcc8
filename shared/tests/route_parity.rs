//! One source of truth for routing: the route table in `routes.rs` must match what
//! `template.yaml` deploys, what `docs/openapi.yaml` documents, and the function binaries.

use std::collections::BTreeSet;
use std::path::PathBuf;

use natter::routes::HTTP_ROUTES;
use serde_yaml::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn load_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_file(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

type RouteSet = BTreeSet<(String, String, String)>;

fn table_routes() -> RouteSet {
    HTTP_ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.function.to_string(),
            )
        })
        .collect()
}

fn string(value: &Value, what: &str) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
        .to_string()
}

/// The template's resources of one type, by logical id.
fn resources_of<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("template has Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (string(name, "resource name"), r))
        .collect()
}

/// (method, path, binary) for every `HttpApi` event of every function in the template.
fn template_routes(template: &Value) -> RouteSet {
    let mut routes = BTreeSet::new();
    for (name, resource) in resources_of(template, "AWS::Serverless::Function") {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let binary = string(
                &resource["Metadata"]["BuildProperties"]["Binary"],
                &format!("{name} binary"),
            );
            routes.insert((
                string(&event["Properties"]["Method"], "Method").to_uppercase(),
                string(&event["Properties"]["Path"], "Path"),
                binary,
            ));
        }
    }
    routes
}

#[test]
fn template_declares_exactly_the_route_table() {
    let template = load_yaml("template.yaml");
    assert_eq!(template_routes(&template), table_routes());
}

/// The logical id of a function in the template: `send-message` → `SendMessageFunction`.
fn logical_id(function: &str) -> String {
    let mut id = String::new();
    for part in function.split('-') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id + "Function"
}

#[test]
fn every_template_function_builds_an_existing_binary_with_cargo_lambda() {
    let template = load_yaml("template.yaml");
    let bins = binaries();
    for (name, resource) in resources_of(&template, "AWS::Serverless::Function") {
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name} builds with cargo-lambda"
        );
        let binary = string(
            &resource["Metadata"]["BuildProperties"]["Binary"],
            &format!("{name} binary"),
        );
        assert!(bins.contains(&binary), "{name} names a missing binary {binary}");
        assert_eq!(name, logical_id(&binary), "logical id follows the binary name");
    }
}

#[test]
fn openapi_documents_exactly_the_route_table() {
    let openapi = load_yaml("docs/openapi.yaml");
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().expect("openapi has paths") {
        for (method, operation) in item.as_mapping().expect("path item is a mapping") {
            let method = string(method, "method");
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((
                method.to_uppercase(),
                string(path, "path"),
                string(&operation["operationId"], "operationId"),
            ));
        }
    }
    assert_eq!(documented, table_routes());
}

fn binaries() -> BTreeSet<String> {
    std::fs::read_dir(repo_file("functions/src/bin"))
        .expect("functions/src/bin exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn every_route_function_has_a_binary() {
    let bins = binaries();
    for route in HTTP_ROUTES {
        assert!(
            bins.contains(route.function),
            "no binary for {}",
            route.function
        );
    }
}
