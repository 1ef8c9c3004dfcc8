//! One source of truth for routing: the route table in `routes.rs` must match what
//! `template.yaml` deploys, what `docs/openapi.yaml` documents, and the function binaries.

use std::collections::BTreeSet;

use natter::routes::{HTTP_ROUTES, WS_AUTHORIZER_FUNCTION, WS_ROUTES};
use serde_yaml::Value;

mod common;
use common::repo::{load_yaml, repo_file};

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
        assert!(
            bins.contains(&binary),
            "{name} names a missing binary {binary}"
        );
        assert_eq!(
            name,
            logical_id(&binary),
            "logical id follows the binary name"
        );
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

// ---- The WebSocket API ----

/// A value without its CloudFormation tag (`!Sub "..."` → `"..."`).
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

/// The logical ids named as `${Name}` or `${Name.Attr}` in a `!Sub` string.
fn sub_references(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(|name| name.split('.').next().unwrap_or(name).to_string())
        .collect()
}

/// The binary of the function an `AWS_PROXY` integration (or authorizer) URI invokes.
fn invoked_binary(template: &Value, uri: &Value, what: &str) -> String {
    let uri = string(untagged(uri), what);
    let function = sub_references(&uri)
        .into_iter()
        .find(|name| name.ends_with("Function"))
        .unwrap_or_else(|| panic!("{what} names no function: {uri}"));
    let resource = &template["Resources"][function.as_str()];
    string(
        &resource["Metadata"]["BuildProperties"]["Binary"],
        &format!("{function} binary"),
    )
}

fn ws_table_routes() -> BTreeSet<(String, String)> {
    WS_ROUTES
        .iter()
        .map(|r| (r.route_key.to_string(), r.function.to_string()))
        .collect()
}

#[test]
fn template_declares_exactly_the_websocket_routes() {
    let template = load_yaml("template.yaml");
    let mut declared = BTreeSet::new();
    for (name, route) in resources_of(&template, "AWS::ApiGatewayV2::Route") {
        let props = &route["Properties"];
        let key = string(&props["RouteKey"], &format!("{name} RouteKey"));
        let target = string(untagged(&props["Target"]), &format!("{name} Target"));
        let integration = target
            .strip_prefix("integrations/")
            .map(sub_references)
            .and_then(|refs| refs.into_iter().next())
            .unwrap_or_else(|| panic!("{name} Target is not integrations/${{...}}: {target}"));
        let integration = &template["Resources"][integration.as_str()];
        assert_eq!(
            integration["Type"].as_str(),
            Some("AWS::ApiGatewayV2::Integration"),
            "{name} targets an integration"
        );
        assert_eq!(
            integration["Properties"]["IntegrationType"].as_str(),
            Some("AWS_PROXY"),
            "{name}'s integration is a Lambda proxy"
        );
        let binary = invoked_binary(
            &template,
            &integration["Properties"]["IntegrationUri"],
            &format!("{name} integration"),
        );
        // Replies are the route's response: every message route has a $default route response.
        if !key.starts_with("$connect") && key != "$disconnect" {
            assert_eq!(
                props["RouteResponseSelectionExpression"].as_str(),
                Some("$default"),
                "{name} sends its function's reply back"
            );
            let has_response = resources_of(&template, "AWS::ApiGatewayV2::RouteResponse")
                .iter()
                .any(|(_, r)| {
                    untagged(&r["Properties"]["RouteId"]) == &Value::String(name.clone())
                        && r["Properties"]["RouteResponseKey"].as_str() == Some("$default")
                });
            assert!(has_response, "{name} has a $default route response");
        }
        // Only $connect is authorized, by the WebSocket authorizer.
        if key == "$connect" {
            assert_eq!(props["AuthorizationType"].as_str(), Some("CUSTOM"));
            let authorizer = string(untagged(&props["AuthorizerId"]), "AuthorizerId");
            let authorizer = &template["Resources"][authorizer.as_str()];
            assert_eq!(
                authorizer["Properties"]["AuthorizerType"].as_str(),
                Some("REQUEST")
            );
            assert_eq!(
                authorizer["Properties"]["IdentitySource"][0].as_str(),
                Some("route.request.querystring.token")
            );
            assert_eq!(
                invoked_binary(
                    &template,
                    &authorizer["Properties"]["AuthorizerUri"],
                    "the WebSocket authorizer"
                ),
                WS_AUTHORIZER_FUNCTION
            );
        }
        assert!(declared.insert((key.clone(), binary)), "route {key} twice");
    }
    assert_eq!(declared, ws_table_routes());
}

#[test]
fn every_websocket_function_has_a_binary() {
    let bins = binaries();
    for route in WS_ROUTES {
        assert!(
            bins.contains(route.function),
            "no binary for {}",
            route.function
        );
    }
    assert!(bins.contains(WS_AUTHORIZER_FUNCTION));
    assert!(bins.contains("fan-out"));
    assert!(bins.contains("typing-expiry"));
}

#[test]
fn only_the_fan_out_may_post_to_connections() {
    let template = load_yaml("template.yaml");
    for (name, function) in resources_of(&template, "AWS::Serverless::Function") {
        let policies = function["Properties"]["Policies"].as_sequence();
        for policy in policies.into_iter().flatten() {
            let statements = policy["Statement"].as_sequence();
            for statement in statements.into_iter().flatten() {
                let text = serde_yaml::to_string(&statement["Action"]).unwrap_or_default();
                if text.contains("execute-api") {
                    assert_eq!(name, "FanOutFunction", "{name} may not manage connections");
                }
            }
        }
    }
    let fan_out = &template["Resources"]["FanOutFunction"]["Properties"];
    // Its inline statements (the first policy is the shared `!Ref WarmUpPolicy`).
    let statements: Vec<&serde_yaml::Value> = fan_out["Policies"]
        .as_sequence()
        .expect("fan-out policies")
        .iter()
        .filter_map(|p| p["Statement"].as_sequence())
        .flatten()
        .collect();
    assert!(statements
        .iter()
        .any(|s| s["Action"][0].as_str() == Some("execute-api:ManageConnections")));
    let stream = &fan_out["Events"]["Stream"]["Properties"];
    assert_eq!(
        stream["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(stream["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert!(stream["MaximumRetryAttempts"].as_u64().is_some());
    assert!(!stream["DestinationConfig"]["OnFailure"]["Destination"].is_null());
}

/// The HTTP API's authorizer: every route behind it, payload 2.0 with simple responses, its one
/// identity source the `Authorization` header and its verdicts cached for the TTL natter's
/// functions and natter-local assume (`config::authorizer`).
#[test]
fn the_http_authorizer_caches_its_verdicts_per_authorization_header() {
    use natter::config::authorizer::{CACHE_TTL_SECS, IDENTITY_HEADER};
    let template = load_yaml("template.yaml");
    let auth = &template["Resources"]["HttpApi"]["Properties"]["Auth"];
    let name = string(&auth["DefaultAuthorizer"], "DefaultAuthorizer");
    let authorizer = &auth["Authorizers"][name.as_str()];
    assert_eq!(
        authorizer["AuthorizerPayloadFormatVersion"].as_str(),
        Some("2.0")
    );
    assert_eq!(authorizer["EnableSimpleResponses"].as_bool(), Some(true));
    let function = string(
        untagged(&authorizer["FunctionArn"]),
        "the authorizer's FunctionArn (!GetAtt Function.Arn)",
    );
    assert_eq!(
        function.split('.').next(),
        Some("AuthorizerFunction"),
        "{function}"
    );
    let identity = &authorizer["Identity"];
    let headers: Vec<String> = identity["Headers"]
        .as_sequence()
        .expect("the authorizer names its identity headers")
        .iter()
        .map(|h| string(h, "identity header"))
        .collect();
    assert_eq!(headers, vec![IDENTITY_HEADER.to_string()]);
    for other in ["QueryStrings", "StageVariables", "Context"] {
        assert!(
            identity[other].is_null(),
            "{other}: the cache key must be the Authorization header alone"
        );
    }
    assert_eq!(
        identity["ReauthorizeEvery"].as_u64(),
        Some(CACHE_TTL_SECS),
        "the cache TTL (ReauthorizeEvery) is config::authorizer::CACHE_TTL_SECS"
    );
    // "Refused within a minute": a removed key's cached verdicts live at most this long.
    assert!((1..=60).contains(&CACHE_TTL_SECS));
    // No route opts out of the authorizer.
    for (name, function) in resources_of(&template, "AWS::Serverless::Function") {
        for (_, event) in function["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if event["Type"].as_str() == Some("HttpApi") {
                assert!(
                    event["Properties"]["Auth"].is_null(),
                    "{name}'s route sets its own Auth"
                );
            }
        }
    }
}
