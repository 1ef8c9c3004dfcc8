//! HTTP API events in, responses out: the layer between API Gateway and the domain.
//!
//! Each operation is declared once in `http_operations!` with its route and the few lines that
//! turn a request into its domain call; a function's binary serves one by type
//! (`HttpService::new::<SendMessage>`), natter-local all of them. `HttpService::handle` reads the
//! authorizer's verdict, the decoded path parameters, the query and the JSON body, calls the
//! operation, and turns its result or error into a response.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use async_trait::async_trait;

use crate::auth::Identity;
use crate::authorizer::identity_from_context;
use crate::config::sizes::HTTP_RESPONSE_MAX_BYTES;
use crate::config::Limits;
use crate::domain::{
    AddReaction, ClearInbox, DeleteInboxMessage, DeleteMessage, DeleteParticipant, EditMessage,
    GetConversation, GetMessage, GetUser, ImportMessages, ListConversations, ListInbox,
    ListMessages, MarkRead, MarkUnread, ParticipantBody, PutConversation, PutParticipant, PutUser,
    RemoveReaction, SendInboxMessage, SendMessage,
};
use crate::error::{Error, Result};
use crate::routes::HttpRoute;
use crate::services::{Component, Services};
use crate::sizes::{self, Wire};

/// A successful response: status and optional JSON body, as the text sent (serialized straight
/// from the result, never through `serde_json::Value`, so that inbox messages keep their numbers
/// exactly).
pub struct Reply {
    status: u16,
    body: Option<String>,
}

fn json<T: Serialize>(status: u16, value: T) -> Result<Reply> {
    Ok(Reply {
        status,
        body: Some(sizes::json_text(&value)?),
    })
}

/// The body of a message or conversation page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagesPage<'a, T> {
    data: &'a [T],
    loaded_all: bool,
}

/// The body of an inbox page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InboxPage<'a, T> {
    data: &'a [T],
    has_more: bool,
}

/// A page response, as big as fits: the longest run of `items` whose response, measured as the
/// Lambda invocation response that carries it, stays within `HTTP_RESPONSE_MAX_BYTES`.
/// `body(items, cut)` writes the body as JSON text (`cut`: the page stopped early for lack of
/// room).
fn page<T: Serialize>(items: Vec<T>, body: impl Fn(&[T], bool) -> Result<String>) -> Result<Reply> {
    // `true` and `false` differ in length: the envelope is the longer of the two.
    let envelope = text_response_len(body(&[], true)?)?.max(text_response_len(body(&[], false)?)?);
    let fitted = sizes::fit(items, envelope, HTTP_RESPONSE_MAX_BYTES, Wire::LambdaBody)?;
    if fitted.cut && fitted.items.is_empty() {
        // The limits make the largest item fit alone (`tests/frame_sizes.rs` measures it): an
        // empty page that says "more" would stall its client.
        return Err(Error::Internal(
            "the first item of a page does not fit in a response".into(),
        ));
    }
    Ok(Reply {
        status: 200,
        body: Some(body(&fitted.items, fitted.cut)?),
    })
}

/// Bytes of the Lambda invocation response that carries a 200 with `body`.
pub fn lambda_response_len<B: Serialize + ?Sized>(body: &B) -> Result<usize> {
    text_response_len(sizes::json_text(body)?)
}

/// Bytes of the Lambda invocation response that carries a 200 with this JSON text.
fn text_response_len(body: String) -> Result<usize> {
    sizes::json_len(&response(200, Some(body)))
}

/// `limit` from the query: a whole number in plain decimal digits, given at most once (its
/// range is the operation's to check). `+5`, `-5`, ` 5`, `5.0` or `0x5` are refused, not read
/// as something else.
fn limit_param(req: &Request<'_>) -> Result<Option<usize>> {
    let Some(raw) = req.query("limit")? else {
        return Ok(None);
    };
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| raw.parse::<usize>().ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(format!(
                "limit must be a whole number in decimal digits, got {raw:?}"
            ))
        })
}

fn no_content() -> Result<Reply> {
    Ok(Reply {
        status: 204,
        body: None,
    })
}

/// An HTTP API operation: a domain operation with its route. `ROUTE` is generated, with the
/// route table, by the one declaration per operation below.
pub trait HttpOperation: Component + HttpHandler + 'static {
    const ROUTE: HttpRoute;
}

/// How one operation turns an authorized request into a domain call and its reply.
#[async_trait]
pub trait HttpHandler: Send + Sync {
    async fn call(&self, identity: &Identity, req: &Request<'_>) -> Result<Reply>;
}

/// One operation ready to serve events: what a function's `main` runs and what natter-local
/// dispatches to.
pub struct HttpService {
    route: HttpRoute,
    handler: Box<dyn HttpHandler>,
    limits: Limits,
    /// Checks a (possibly cached) verdict's token expiry.
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl HttpService {
    /// Builds operation `O` from the services.
    pub fn new<O: HttpOperation>(services: &Services) -> Self {
        HttpService {
            route: O::ROUTE,
            handler: Box::new(O::build(services)),
            limits: services.config().limits.clone(),
            clock: services.clock().clone(),
        }
    }

    pub fn route(&self) -> &HttpRoute {
        &self.route
    }

    /// Serves one API Gateway HTTP API event.
    pub async fn handle(&self, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let reply = async {
            let now_secs = (self.clock.now_ms() / 1000).max(0) as u64;
            let identity = identity_from_context(&event.request_context, now_secs)?;
            let req = Request::new(&self.limits, &event)?;
            self.handler.call(&identity, &req).await
        };
        respond(self.route.function, reply.await)
    }
}

/// Declares every HTTP operation once: its route and how a request becomes its domain call.
/// From it come each operation's `HttpOperation` impl, `HTTP_ROUTES` and `all_services`.
macro_rules! http_operations {
    ($($op:ident: $method:literal $path:literal => $function:literal,
        |$this:ident, $id:ident, $req:ident| $body:expr;)*) => {
        $(
            impl HttpOperation for $op {
                const ROUTE: HttpRoute = HttpRoute {
                    method: $method,
                    path: $path,
                    function: $function,
                    ports: crate::services::ports_of::<$op>,
                };
            }

            #[async_trait]
            impl HttpHandler for $op {
                async fn call(&self, $id: &Identity, $req: &Request<'_>) -> Result<Reply> {
                    let $this = self;
                    $body
                }
            }
        )*

        /// Every HTTP API route, in declaration order.
        pub const HTTP_ROUTES: &[HttpRoute] = &[$(<$op as HttpOperation>::ROUTE,)*];

        /// Every HTTP operation, built from one set of services (natter-local serves them all).
        pub fn all_services(services: &Services) -> Vec<HttpService> {
            vec![$(HttpService::new::<$op>(services),)*]
        }
    };
}

http_operations! {
    PutUser: "PUT" "/v1/users/{userId}" => "put-user",
        |op, id, req| json(200, op.run(id, req.path("userId")?, req.object_body()?).await?);
    GetUser: "GET" "/v1/users/{userId}" => "get-user",
        |op, id, req| json(200, op.run(id, req.path("userId")?).await?);
    PutConversation: "PUT" "/v1/conversations/{conversationId}" => "put-conversation",
        |op, id, req| json(200, op.run(id, req.path("conversationId")?, req.object_body()?).await?);
    GetConversation: "GET" "/v1/conversations/{conversationId}" => "get-conversation",
        |op, id, req| json(200, op.run(id, req.path("conversationId")?).await?);
    PutParticipant: "PUT" "/v1/conversations/{conversationId}/participants/{userId}"
        => "put-participant",
        |op, id, req| {
            let body = req
                .optional_object_body()?
                .unwrap_or(ParticipantBody { access: None });
            op.run(id, req.path("conversationId")?, req.path("userId")?, body).await?;
            no_content()
        };
    DeleteParticipant: "DELETE" "/v1/conversations/{conversationId}/participants/{userId}"
        => "delete-participant",
        |op, id, req| {
            op.run(id, req.path("conversationId")?, req.path("userId")?).await?;
            no_content()
        };
    SendMessage: "POST" "/v1/conversations/{conversationId}/messages" => "send-message",
        |op, id, req| json(201, op.run(id, req.path("conversationId")?, req.object_body()?).await?);
    ListMessages: "GET" "/v1/conversations/{conversationId}/messages" => "list-messages",
        |op, id, req| {
            let cid = req.path("conversationId")?;
            let before = req.query("before")?;
            let found = op.run(id, cid, limit_param(req)?, before.as_deref()).await?;
            page(found.data, |data, cut| {
                sizes::json_text(&MessagesPage { data, loaded_all: found.loaded_all && !cut })
            })
        };
    GetMessage: "GET" "/v1/conversations/{conversationId}/messages/{messageId}"
        => "get-message",
        |op, id, req| {
            let (cid, mid) = (req.path("conversationId")?, req.path("messageId")?);
            json(200, op.run(id, cid, mid).await?)
        };
    EditMessage: "PATCH" "/v1/conversations/{conversationId}/messages/{messageId}"
        => "edit-message",
        |op, id, req| {
            let (cid, mid) = (req.path("conversationId")?, req.path("messageId")?);
            json(200, op.run(id, cid, mid, req.object_body()?).await?)
        };
    DeleteMessage: "DELETE" "/v1/conversations/{conversationId}/messages/{messageId}"
        => "delete-message",
        |op, id, req| {
            op.run(id, req.path("conversationId")?, req.path("messageId")?).await?;
            no_content()
        };
    AddReaction: "PUT"
        "/v1/conversations/{conversationId}/messages/{messageId}/reactions/{emoji}"
        => "add-reaction",
        |op, id, req| {
            let (cid, mid) = (req.path("conversationId")?, req.path("messageId")?);
            op.run(id, cid, mid, req.path("emoji")?).await?;
            no_content()
        };
    RemoveReaction: "DELETE"
        "/v1/conversations/{conversationId}/messages/{messageId}/reactions/{emoji}"
        => "remove-reaction",
        |op, id, req| {
            let (cid, mid) = (req.path("conversationId")?, req.path("messageId")?);
            op.run(id, cid, mid, req.path("emoji")?).await?;
            no_content()
        };
    ImportMessages: "POST" "/v1/import/conversations/{conversationId}/messages"
        => "import-messages",
        |op, id, req| {
            let ids = op.run(id, req.path("conversationId")?, req.body()?).await?;
            json(201, serde_json::json!({ "messageIds": ids }))
        };
    ListConversations: "GET" "/v1/users/{userId}/conversations" => "list-conversations",
        |op, id, req| {
            let before = req.query("before")?;
            let found = op
                .run(id, req.path("userId")?, limit_param(req)?, before.as_deref())
                .await?;
            page(found.data, |data, cut| {
                sizes::json_text(&MessagesPage { data, loaded_all: found.loaded_all && !cut })
            })
        };
    MarkRead: "POST" "/v1/conversations/{conversationId}/read" => "mark-read",
        |op, id, req| {
            op.run(id, req.path("conversationId")?).await?;
            no_content()
        };
    MarkUnread: "POST" "/v1/conversations/{conversationId}/unread" => "mark-unread",
        |op, id, req| {
            op.run(id, req.path("conversationId")?).await?;
            no_content()
        };
    SendInboxMessage: "POST" "/v1/inbox" => "send-inbox-message",
        |op, id, req| {
            let ids = op.run(id, req.body()?).await?;
            json(201, serde_json::json!({ "messageIds": ids }))
        };
    ListInbox: "GET" "/v1/inbox" => "list-inbox",
        |op, id, req| {
            let after = req.query("after")?;
            let found = op.run(id, limit_param(req)?, after.as_deref()).await?;
            page(found.messages, |data, cut| {
                sizes::json_text(&InboxPage { data, has_more: found.has_more || cut })
            })
        };
    DeleteInboxMessage: "DELETE" "/v1/inbox/{messageId}" => "delete-inbox-message",
        |op, id, req| {
            op.run(id, req.path("messageId")?).await?;
            no_content()
        };
    ClearInbox: "DELETE" "/v1/inbox" => "clear-inbox",
        |op, id, _req| {
            op.run(id).await?;
            no_content()
        };
}

fn respond(function: &str, reply: Result<Reply>) -> ApiGatewayV2httpResponse {
    match reply {
        Ok(reply) => response(reply.status, reply.body),
        Err(error) => {
            if let Error::Internal(detail) = &error {
                tracing::error!(function, detail, "internal error");
            }
            response(error.status(), Some(error.body().to_string()))
        }
    }
}

/// Read access to one event's parts, with errors that name what is wrong.
pub struct Request<'a> {
    event: &'a ApiGatewayV2httpRequest,
    body: Option<Vec<u8>>,
}

impl<'a> Request<'a> {
    fn new(limits: &Limits, event: &'a ApiGatewayV2httpRequest) -> Result<Self> {
        let body = match &event.body {
            None => None,
            Some(text) if event.is_base64_encoded => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| Error::invalid(format!("body is not valid base64: {e}")))?,
            ),
            Some(text) => Some(text.clone().into_bytes()),
        };
        let max = limits.max_body_bytes;
        if let Some(body) = &body {
            if body.len() > max {
                return Err(Error::TooLarge(format!(
                    "request body is {} bytes; the most is {max}",
                    body.len()
                )));
            }
        }
        Ok(Request { event, body })
    }

    /// A path parameter; API Gateway passes them percent-decoded.
    fn path(&self, name: &str) -> Result<&'a str> {
        self.event
            .path_parameters
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| Error::invalid(format!("missing path parameter {name}")))
    }

    /// A query parameter, percent-decoded; given twice it is refused (which one was meant?).
    /// Read from the raw query string, so that a value with a comma is one value (API Gateway
    /// joins repeated parameters with commas in `queryStringParameters`).
    fn query(&self, name: &str) -> Result<Option<String>> {
        let twice = || {
            Error::invalid(format!(
                "the query parameter {name} is given more than once"
            ))
        };
        let Some(raw) = self.event.raw_query_string.as_deref() else {
            return match self.event.query_string_parameters.all(name) {
                None => Ok(None),
                Some(values) if values.len() == 1 => Ok(values.first().map(|v| v.to_string())),
                Some(_) => Err(twice()),
            };
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| Error::invalid("the query string is not UTF-8 once decoded"))
        };
        let mut found = None;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if decode(key)? == name {
                if found.is_some() {
                    return Err(twice());
                }
                found = Some(decode(value)?);
            }
        }
        Ok(found)
    }

    fn body<T: DeserializeOwned>(&self) -> Result<T> {
        self.optional_body()?
            .ok_or_else(|| Error::invalid("request body is required (JSON)"))
    }

    /// A body the contract says is a JSON object: anything else (an array, which serde would
    /// otherwise read into a struct field by field) is 400.
    fn object_body<T: DeserializeOwned>(&self) -> Result<T> {
        self.optional_object_body()?
            .ok_or_else(|| Error::invalid("request body is required (JSON)"))
    }

    fn optional_object_body<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let first = self
            .body
            .as_deref()
            .and_then(|b| b.iter().find(|c| !c.is_ascii_whitespace()));
        match first {
            Some(b'{') | None => self.optional_body(),
            Some(_) => Err(Error::invalid("request body must be a JSON object")),
        }
    }

    fn optional_body<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.body {
            None => Ok(None),
            Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
            // An object where the contract says object, and no key twice (`json.rs`).
            Some(bytes) => crate::json::from_slice(bytes)
                .map(Some)
                .map_err(|e| Error::invalid(format!("invalid JSON body: {e}"))),
        }
    }
}

fn response(status: u16, body: Option<String>) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    if let Some(body) = body {
        response.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response.body = Some(Body::Text(body));
    }
    response
}
