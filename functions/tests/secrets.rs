//! The authorizers' init against Secrets Manager (moto, at `NATTER_TEST_DYNAMODB_ENDPOINT`: moto
//! serves every service on one port): the secrets are created there, the authorizers' loader
//! reads them, and the resulting keys verify tokens of both kids and refuse the rest. The loader
//! sends nothing but `GetSecretValue` (`natter::secrets::ACTIONS`, what `template.yaml` grants).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use natter::auth::{issue_user_token, AuthConfig, SigningKey};
use serde_json::{json, Value};

const ENDPOINT_VAR: &str = "NATTER_TEST_DYNAMODB_ENDPOINT";
const SECRET_KEY: &str = "moto-secret-key-0123456789abcdef0123456789";
const K1: (&str, &str) = ("k1", "moto-signing-secret-one-0123456789abcdef");
const K2: (&str, &str) = ("k2", "moto-signing-secret-two-0123456789abcdef");

/// Records the Secrets Manager operations a client sends, as IAM actions.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<BTreeSet<String>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "secrets::Recorder"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        if let Ok(mut sent) = self.0.lock() {
            sent.insert(format!("secretsmanager:{operation}"));
        }
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run scripts/test, which starts moto (this test never skips)")
    });
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "secrets-test"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A plain client for setting things up, and the authorizers' client, recorded.
async fn clients() -> (Client, Client, Recorder) {
    let sdk = sdk().await;
    let recorder = Recorder::default();
    let recorded = Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    (Client::new(&sdk), recorded, recorder)
}

/// Creates a uniquely named secret holding `value`; returns its ARN.
async fn create(setup: &Client, name: &str, value: &Value) -> String {
    let unique = format!(
        "natter-test-{name}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    setup
        .create_secret()
        .name(unique)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("moto creates the secret")
        .arn
        .expect("an ARN")
}

fn http_verdict(config: &AuthConfig, token: &str) -> Value {
    let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/v1/users/a",
        "headers": {"authorization": format!("Bearer {token}")},
        "requestContext": {"http": {"method": "GET", "path": "/v1/users/a"}},
    }))
    .expect("an authorizer event");
    let response = natter::authorizer::authorize(config, &event, now_secs());
    assert!(response.is_authorized, "the HTTP authorizer never says no");
    response.context
}

fn ws_verdict(config: &AuthConfig, token: &str) -> Result<String, String> {
    let event: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:ws/prod/$connect",
        "queryStringParameters": {"token": token},
        "multiValueQueryStringParameters": {"token": [token]},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": "c1",
            "requestId": "r1",
            "apiId": "ws",
            "stage": "prod",
            "identity": {"sourceIp": "127.0.0.1"},
            "connectedAt": 0,
            "requestTimeEpoch": 0,
        },
    }))
    .expect("a $connect authorizer event");
    natter::ws::authorize(config, &event, now_secs())
        .map(|r| r.principal_id.unwrap_or_default())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_authorizers_load_both_kids_from_secrets_manager() {
    let (setup, client, recorder) = clients().await;
    let key_arn = create(&setup, "secret-key", &json!({ "secretKey": SECRET_KEY })).await;
    let keys_arn = create(&setup, "signing-keys", &json!({ K1.0: K1.1, K2.0: K2.1 })).await;

    let config = natter_functions::load_auth_config(&client, &key_arn, &keys_arn)
        .await
        .expect("the secrets load");
    assert_eq!(config.secret_key, SECRET_KEY);
    assert_eq!(
        config.signing_keys(),
        &[SigningKey::new(K1.0, K1.1), SigningKey::new(K2.0, K2.1)]
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        natter::secrets::ACTIONS
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>(),
        "the loader sends exactly what template.yaml grants the authorizers"
    );

    // A token of either kid passes both authorizers.
    for (kid, secret) in [K1, K2] {
        let user = format!("user-of-{kid}");
        let token = issue_user_token(&user, None, 60, now_secs(), &SigningKey::new(kid, secret))
            .expect("token");
        let verdict = http_verdict(&config, &token);
        assert_eq!(verdict["kind"], "user", "{kid}: {verdict}");
        assert_eq!(verdict["userId"], user.as_str());
        assert_eq!(ws_verdict(&config, &token), Ok(user));
    }
    // The secret key passes the HTTP authorizer.
    assert_eq!(http_verdict(&config, SECRET_KEY)["kind"], "secret");

    // An unknown kid, and a known kid with a signature made with another secret, are refused.
    let unknown =
        issue_user_token("u", None, 60, now_secs(), &SigningKey::new("k3", K1.1)).unwrap();
    let forged = issue_user_token(
        "u",
        None,
        60,
        now_secs(),
        &SigningKey::new(K1.0, "not-the-signing-secret-0123456789abcdef"),
    )
    .unwrap();
    for (token, why) in [
        (unknown, "token kid \"k3\" names no current signing key"),
        (forged, "token signature is invalid"),
    ] {
        let verdict = http_verdict(&config, &token);
        assert_eq!(verdict["kind"], "denied", "{why}: {verdict}");
        assert_eq!(verdict["error"], why);
        assert_eq!(ws_verdict(&config, &token), Err(why.to_string()));
    }
}

/// The init path itself: the ARNs come from the environment the template sets, and a failure is
/// an error that names the secret and the reason.
#[tokio::test]
async fn init_reads_the_arns_from_the_environment_and_fails_clearly() {
    let (setup, client, _) = clients().await;
    let key_arn = create(&setup, "secret-key", &json!({ "secretKey": SECRET_KEY })).await;
    let keys_arn = create(&setup, "signing-keys", &json!({ K1.0: K1.1 })).await;
    let bad_keys_arn = create(&setup, "bad-keys", &json!({ "k1": "short" })).await;

    // Only this test touches these variables.
    std::env::set_var(natter::secrets::SECRET_KEY_SECRET_ENV, &key_arn);
    std::env::set_var(natter::secrets::SIGNING_KEYS_SECRET_ENV, &keys_arn);
    let config = natter_functions::auth_config_at_init(&client)
        .await
        .expect("init loads the secrets");
    assert_eq!(config.signing_keys(), &[SigningKey::new(K1.0, K1.1)]);

    std::env::set_var(natter::secrets::SIGNING_KEYS_SECRET_ENV, &bad_keys_arn);
    let err = natter_functions::auth_config_at_init(&client)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("signing key \"k1\" is shorter than 32 characters"),
        "{err}"
    );

    let missing = format!("{keys_arn}-missing");
    std::env::set_var(natter::secrets::SIGNING_KEYS_SECRET_ENV, &missing);
    let err = natter_functions::auth_config_at_init(&client)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("could not read secret {missing}")),
        "{err}"
    );

    std::env::remove_var(natter::secrets::SIGNING_KEYS_SECRET_ENV);
    let err = natter_functions::auth_config_at_init(&client)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "SIGNING_KEYS_SECRET_ARN is not set");
    std::env::remove_var(natter::secrets::SECRET_KEY_SECRET_ENV);
}
