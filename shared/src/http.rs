//! HTTP API events in, responses out: the layer between API Gateway and the domain.
//!
//! `handle` serves one function of the route table (`routes::HTTP_ROUTES`). It reads the
//! authorizer's verdict, the decoded path parameters, the query and the JSON body, calls the
//! domain, and turns its result or error into a response.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::authorizer::identity_from_context;
use crate::config::Limits;
use crate::domain::{Domain, Inbox};
use crate::error::{Error, Result};

/// A successful response: status and optional JSON body.
struct Reply {
    status: u16,
    body: Option<serde_json::Value>,
}

fn json<T: Serialize>(status: u16, value: T) -> Result<Reply> {
    let body = serde_json::to_value(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Reply {
        status,
        body: Some(body),
    })
}

fn no_content() -> Result<Reply> {
    Ok(Reply {
        status: 204,
        body: None,
    })
}

/// Serves `function` (a name from the route table) for one API Gateway HTTP API event.
pub async fn handle(
    domain: &Domain,
    function: &str,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    respond(function, dispatch(domain, function, &event).await)
}

/// Serves one of the inbox functions (`routes::INBOX_FUNCTIONS`).
pub async fn handle_inbox(
    inbox: &Inbox,
    function: &str,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    respond(function, dispatch_inbox(inbox, function, &event).await)
}

async fn dispatch_inbox(
    inbox: &Inbox,
    function: &str,
    event: &ApiGatewayV2httpRequest,
) -> Result<Reply> {
    let identity = identity_from_context(&event.request_context)?;
    let req = Request::new(&inbox.config.limits, event)?;
    match function {
        "send-inbox-message" => {
            let ids = inbox.send(&identity, req.body()?).await?;
            json(201, serde_json::json!({ "messageIds": ids }))
        }
        "list-inbox" => json(
            200,
            serde_json::json!({ "data": inbox.list_for(&identity).await? }),
        ),
        "delete-inbox-message" => {
            inbox.delete(&identity, req.path("messageId")?).await?;
            no_content()
        }
        "clear-inbox" => {
            inbox.clear(&identity).await?;
            no_content()
        }
        other => Err(Error::Internal(format!("no inbox handler for {other:?}"))),
    }
}

fn respond(function: &str, reply: Result<Reply>) -> ApiGatewayV2httpResponse {
    match reply {
        Ok(reply) => response(reply.status, reply.body),
        Err(error) => {
            if let Error::Internal(detail) = &error {
                tracing::error!(function, detail, "internal error");
            }
            response(error.status(), Some(error.body()))
        }
    }
}

async fn dispatch(
    domain: &Domain,
    function: &str,
    event: &ApiGatewayV2httpRequest,
) -> Result<Reply> {
    let identity = identity_from_context(&event.request_context)?;
    let id = &identity;
    let req = Request::new(&domain.config.limits, event)?;
    match function {
        "put-user" => json(
            200,
            domain
                .put_user(id, req.path("userId")?, req.body()?)
                .await?,
        ),
        "get-user" => json(200, domain.get_user(id, req.path("userId")?).await?),
        "put-conversation" => json(
            200,
            domain
                .put_conversation(id, req.path("conversationId")?, req.body()?)
                .await?,
        ),
        "get-conversation" => json(
            200,
            domain
                .get_conversation(id, req.path("conversationId")?)
                .await?,
        ),
        "put-participant" => {
            let body = req
                .optional_body()?
                .unwrap_or(crate::domain::ParticipantBody { access: None });
            domain
                .put_participant(id, req.path("conversationId")?, req.path("userId")?, body)
                .await?;
            no_content()
        }
        "delete-participant" => {
            domain
                .delete_participant(id, req.path("conversationId")?, req.path("userId")?)
                .await?;
            no_content()
        }
        "send-message" => json(
            201,
            domain
                .send_message(id, req.path("conversationId")?, req.body()?)
                .await?,
        ),
        "list-messages" => {
            let limit = match req.query("limit") {
                None => None,
                Some(raw) => Some(raw.parse::<usize>().map_err(|_| {
                    Error::invalid(format!("limit must be a whole number, got {raw:?}"))
                })?),
            };
            json(
                200,
                domain
                    .list_messages(id, req.path("conversationId")?, limit, req.query("before"))
                    .await?,
            )
        }
        "get-message" => json(
            200,
            domain
                .get_message(id, req.path("conversationId")?, req.path("messageId")?)
                .await?,
        ),
        "edit-message" => json(
            200,
            domain
                .edit_message(
                    id,
                    req.path("conversationId")?,
                    req.path("messageId")?,
                    req.body()?,
                )
                .await?,
        ),
        "delete-message" => {
            domain
                .delete_message(id, req.path("conversationId")?, req.path("messageId")?)
                .await?;
            no_content()
        }
        "add-reaction" => {
            domain
                .add_reaction(
                    id,
                    req.path("conversationId")?,
                    req.path("messageId")?,
                    req.path("emoji")?,
                )
                .await?;
            no_content()
        }
        "remove-reaction" => {
            domain
                .remove_reaction(
                    id,
                    req.path("conversationId")?,
                    req.path("messageId")?,
                    req.path("emoji")?,
                )
                .await?;
            no_content()
        }
        "import-messages" => {
            let ids = domain
                .import_messages(id, req.path("conversationId")?, req.body()?)
                .await?;
            json(201, serde_json::json!({ "messageIds": ids }))
        }
        other => Err(Error::Internal(format!(
            "no handler for function {other:?}"
        ))),
    }
}

/// Read access to one event's parts, with errors that name what is wrong.
struct Request<'a> {
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

    fn query(&self, name: &str) -> Option<&'a str> {
        self.event.query_string_parameters.first(name)
    }

    fn body<T: DeserializeOwned>(&self) -> Result<T> {
        self.optional_body()?
            .ok_or_else(|| Error::invalid("request body is required (JSON)"))
    }

    fn optional_body<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.body {
            None => Ok(None),
            Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| Error::invalid(format!("invalid JSON body: {e}"))),
        }
    }
}

fn response(status: u16, body: Option<serde_json::Value>) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    if let Some(body) = body {
        response.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response.body = Some(Body::Text(body.to_string()));
    }
    response
}
