//! WebSocket API events in, reply frames out: the layer between API Gateway's WebSocket routes
//! and the domain.
//!
//! Each route's function gets an `ApiGatewayWebsocketProxyRequest` and answers with the reply
//! frame as the response body; the API's route responses (`$default` selection) send that body
//! back on the connection, so a reply costs no `@connections` call. Only the fan-out posts.
//!
//! The `$connect` route is guarded by a REQUEST authorizer (`authorize`) that reads the `token`
//! query parameter. Its context (`userId`, `role`) reaches every later route of the connection in
//! `requestContext.authorizer`, where `identity` reads it.
//!
//! Frames are JSON text: the client sends `{action, requestId?, ...}`; replies carry `type` and
//! echo `requestId`. The frame types are in `protocol`; how they behave is in `docs/websocket.md`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Map, Value};

use async_trait::async_trait;

use crate::auth::{authenticate_token, AuthConfig, AuthError, Identity};
use crate::config::sizes::{FRAME_MAX_BYTES, REQUEST_ID_MAX_BYTES};
use crate::domain::{
    Context, ConversationPage, ListConversations, ListInbox, ListMessages, MessagePageSnapshot,
};
use crate::error::{Error, Result};
use crate::operation;
use crate::ports::{
    ConnectionWriter, Disconnector, ItemReader, SubscriptionReader, SubscriptionRemover,
    SubscriptionWriter, WindowExtender,
};
use crate::protocol::{
    ClientFrame, ConversationsState, ErrorBody, ErrorReply, FrameConversation, FrameMessage,
    HelloFrame, HelloReply, InboxMoreFrame, InboxReply, IncomingFrame, PingFrame, PongReply,
    ServerFrame,
};
use crate::realtime::{
    conversation_list_topic, ConnectionRecord, SubscribeOutcome, SubscriptionRecord,
    CONVERSATION_LIST_TOPIC,
};
use crate::routes::WsRoute;
use crate::services::{Component, Services};
use crate::sizes::{self, Fitted, Wire};
pub use crate::typing::WsTyping;
use serde::Serialize;

// ---- The $connect authorizer ----

/// Checks the `token` query parameter of a `$connect` request. A user token gets an IAM policy
/// that allows the connection, with the context `{userId, role?}`; anything else is an error,
/// on which the authorizer function fails with `Unauthorized` so that API Gateway answers 401.
/// The secret key cannot connect (`authenticate_token` refuses it).
pub fn authorize(
    config: &AuthConfig,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    now_secs: u64,
) -> std::result::Result<ApiGatewayCustomAuthorizerResponse<Value>, AuthError> {
    let token = event
        .query_string_parameters
        .first("token")
        .ok_or_else(|| AuthError::Malformed("the token query parameter is missing".into()))?;
    let (user_id, role) = match authenticate_token(token, config, now_secs)? {
        Identity::User { user_id, role } => (user_id, role),
        Identity::Secret => return Err(AuthError::SecretKeyNotAllowed),
    };
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_string()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![event.method_arn.clone().unwrap_or_else(|| "*".to_string())];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_string());
    policy.statement = vec![statement];
    // Context values must be strings, numbers or booleans: no role, no key.
    let mut context = Map::new();
    context.insert("userId".into(), Value::String(user_id.clone()));
    if let Some(role) = role {
        context.insert("role".into(), Value::String(role));
    }
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(user_id);
    response.policy_document = policy;
    response.context = Value::Object(context);
    Ok(response)
}

/// The user behind a connection, from the authorizer context API Gateway passes on every route.
pub fn identity(event: &ApiGatewayWebsocketProxyRequest) -> Result<Identity> {
    let fields = &event.request_context.authorizer.fields;
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    let user_id = text("userId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Unauthorized("the connection was not authorized".into()))?;
    Ok(Identity::User {
        user_id: user_id.to_string(),
        role: text("role").filter(|r| !r.is_empty()).map(str::to_string),
    })
}

// ---- Routes ----

/// A WebSocket route's operation; `ROUTE` and `WS_ROUTES` come from `ws_operations!` below.
pub trait WsOperation: Component + WsHandler + 'static {
    const ROUTE: WsRoute;
}

/// Serves one WebSocket API event of its route.
#[async_trait]
pub trait WsHandler: Send + Sync {
    async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse;
}

/// One route's operation ready to serve events (a function's `main`, or natter-local).
pub struct WsService {
    route: WsRoute,
    handler: Box<dyn WsHandler>,
}

impl WsService {
    pub fn new<O: WsOperation>(services: &Services) -> Self {
        WsService {
            route: O::ROUTE,
            handler: Box::new(O::build(services)),
        }
    }

    pub fn route(&self) -> &WsRoute {
        &self.route
    }

    pub async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        self.handler.handle(event).await
    }
}

/// Declares every WebSocket route once. A `connection` route (`$connect`, `$disconnect`) answers
/// with a status; a `frame` route gets the parsed client frame and answers with a reply frame
/// that echoes its `requestId`; a `silent` one (`typing`) answers only when it has something to
/// say (an error). Each operation's `run` does the work.
macro_rules! ws_operations {
    ($($op:ident: $key:literal => $function:literal, $kind:ident;)*) => {
        $(
            impl WsOperation for $op {
                const ROUTE: WsRoute = WsRoute {
                    route_key: $key,
                    function: $function,
                    ports: crate::services::ports_of::<$op>,
                };
            }

            ws_operations!(@handler $kind $op);
        )*

        /// Every WebSocket route; `$default` is last.
        pub const WS_ROUTES: &[WsRoute] = &[$(<$op as WsOperation>::ROUTE,)*];

        /// Every WebSocket route's operation, built from one set of services.
        pub fn all_services(services: &Services) -> Vec<WsService> {
            vec![$(WsService::new::<$op>(services),)*]
        }
    };
    (@handler connection $op:ident) => {
        #[async_trait]
        impl WsHandler for $op {
            async fn handle(
                &self,
                event: ApiGatewayWebsocketProxyRequest,
            ) -> ApiGatewayProxyResponse {
                status_only(self.run(&event).await)
            }
        }
    };
    (@handler silent $op:ident) => {
        #[async_trait]
        impl WsHandler for $op {
            async fn handle(
                &self,
                event: ApiGatewayWebsocketProxyRequest,
            ) -> ApiGatewayProxyResponse {
                match Frame::parse(event.body.as_deref()).and_then(echoable) {
                    Ok(frame) => match self.run(&event, &frame).await {
                        Ok(None) => no_reply(),
                        Ok(Some(reply)) => reply_response(reply, frame.request_id),
                        Err(e) => reply_response(error_frame(&e), frame.request_id),
                    },
                    Err(e) => reply_response(error_frame(&e), None),
                }
            }
        }
    };
    (@handler frame $op:ident) => {
        #[async_trait]
        impl WsHandler for $op {
            async fn handle(
                &self,
                event: ApiGatewayWebsocketProxyRequest,
            ) -> ApiGatewayProxyResponse {
                match Frame::parse(event.body.as_deref()).and_then(echoable) {
                    Ok(frame) => {
                        let reply = self.run(&event, &frame).await;
                        reply_response(reply.unwrap_or_else(|e| error_frame(&e)), frame.request_id)
                    }
                    Err(e) => reply_response(error_frame(&e), None),
                }
            }
        }
    };
}

ws_operations! {
    WsConnect: "$connect" => "ws-connect", connection;
    WsDisconnect: "$disconnect" => "ws-disconnect", connection;
    WsHello: "hello" => "ws-hello", frame;
    WsInboxMore: "inboxMore" => "ws-inbox-more", frame;
    WsPing: "ping" => "ws-ping", frame;
    WsSubscribe: "subscribe" => "ws-subscribe", frame;
    WsLoadMore: "loadMore" => "ws-load-more", frame;
    WsUnsubscribe: "unsubscribe" => "ws-unsubscribe", frame;
    WsSubscribeConversations: "subscribeConversations" => "ws-subscribe-conversations", frame;
    WsTyping: "typing" => "ws-typing", silent;
    WsDefault: "$default" => "ws-default", frame;
}

operation! {
    /// `$connect`: stores the connection.
    pub struct WsConnect {
        ctx: Context,
        connections: Arc<dyn ConnectionWriter>,
    }
}

operation! {
    /// `$disconnect`: marks the connection closed and drops its subscriptions.
    pub struct WsDisconnect {
        ctx: Context,
        connections: Arc<dyn Disconnector>,
    }
}

operation! {
    /// `hello`: who the client is, and the first page of the inbox replay.
    pub struct WsHello {
        ctx: Context,
        inbox: ListInbox,
    }
}

operation! {
    /// `inboxMore`: the next page of the inbox replay.
    pub struct WsInboxMore {
        ctx: Context,
        inbox: ListInbox,
    }
}

operation! {
    /// `ping`: answered with `pong`; it keeps an idle connection open.
    pub struct WsPing {}
}

operation! {
    /// `subscribe`: a windowed subscription to a conversation's messages.
    pub struct WsSubscribe {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: ListMessages,
        subscriptions: Arc<dyn SubscriptionWriter>,
        windows: Arc<dyn WindowExtender>,
        removals: Arc<dyn SubscriptionRemover>,
    }
}

operation! {
    /// `subscribeConversations`: a windowed subscription to the caller's conversation list.
    pub struct WsSubscribeConversations {
        ctx: Context,
        lists: ListConversations,
        subscriptions: Arc<dyn SubscriptionWriter>,
        windows: Arc<dyn WindowExtender>,
    }
}

operation! {
    /// `loadMore`: widens a subscription's window into the past.
    pub struct WsLoadMore {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: ListMessages,
        lists: ListConversations,
        subscriptions: Arc<dyn SubscriptionReader>,
        windows: Arc<dyn WindowExtender>,
        removals: Arc<dyn SubscriptionRemover>,
    }
}

operation! {
    /// `unsubscribe`.
    pub struct WsUnsubscribe {
        ctx: Context,
        removals: Arc<dyn SubscriptionRemover>,
    }
}

operation! {
    /// `$default`: any other frame, answered with an error.
    pub struct WsDefault {}
}

fn status_only(result: Result<()>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    match result {
        Ok(()) => response.status_code = 200,
        Err(e) => {
            tracing::error!(error = %e, "connection route failed");
            response.status_code = i64::from(e.status());
            response.body = Some(Body::Text(e.body().to_string()));
        }
    }
    response
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Result<&str> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Internal("the event has no connection id".into()))
}

impl WsConnect {
    async fn run(&self, event: &ApiGatewayWebsocketProxyRequest) -> Result<()> {
        let Identity::User { user_id, .. } = identity(event)? else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        let now = self.ctx.now_ms();
        let connected_at = match event.request_context.connected_at {
            at if at > 0 => at,
            _ => now,
        };
        let record = ConnectionRecord::new(connection_id(event)?, &user_id, connected_at);
        self.connections.put_connection(&record).await?;
        Ok(())
    }
}

impl WsDisconnect {
    async fn run(&self, event: &ApiGatewayWebsocketProxyRequest) -> Result<()> {
        let now = self.ctx.now_ms();
        self.connections
            .disconnect(connection_id(event)?, now)
            .await?;
        Ok(())
    }
}

/// A client frame as read from the event body (see `protocol`).
type Frame = IncomingFrame;

/// A frame that reached a route other than its action's: the routing is broken.
fn misrouted(frame: &Frame, route: &str) -> Error {
    Error::Internal(format!(
        "a frame with action {:?} reached the {route} route",
        frame.action()
    ))
}

impl WsDefault {
    /// Only frames whose action has no route of its own come here: reading them as a
    /// `ClientFrame` says what is wrong with them.
    async fn run(
        &self,
        _event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        frame.frame()?;
        Err(misrouted(frame, "$default"))
    }
}

impl WsHello {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::Hello(HelloFrame {}) = frame.frame()? else {
            return Err(misrouted(frame, "hello"));
        };
        let identity = identity(event)?;
        let Identity::User { user_id, .. } = &identity else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        let client_id = connection_id(event)?;
        let max = self.ctx.config().limits.max_inbox_page;
        let page = self.inbox.of_user(user_id, None, max).await?;
        let reply = |messages, has_more| {
            ServerFrame::Hello(HelloReply {
                client_id: client_id.to_string(),
                user_id: user_id.clone(),
                messages,
                has_more,
            })
        };
        let fitted = fit_frame(page.messages, frame, |cut| reply(Vec::new(), cut))?;
        Ok(reply(fitted.items, page.has_more || fitted.cut))
    }
}

impl WsInboxMore {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::InboxMore(InboxMoreFrame { after }) = frame.frame()? else {
            return Err(misrouted(frame, "inboxMore"));
        };
        let after = after.ok_or_else(|| {
            Error::invalid("after is required: the last inbox messageId received")
        })?;
        let identity = identity(event)?;
        let Identity::User { user_id, .. } = &identity else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        let max = self.ctx.config().limits.max_inbox_page;
        let page = self.inbox.of_user(user_id, Some(&after), max).await?;
        let reply = |messages, has_more| ServerFrame::Inbox(InboxReply { messages, has_more });
        let fitted = fit_frame(page.messages, frame, |cut| reply(Vec::new(), cut))?;
        Ok(reply(fitted.items, page.has_more || fitted.cut))
    }
}

impl WsPing {
    async fn run(
        &self,
        _event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::Ping(PingFrame {}) = frame.frame()? else {
            return Err(misrouted(frame, "ping"));
        };
        Ok(ServerFrame::Pong(PongReply {}))
    }
}

fn subscription_id(ctx: &Context, id: Option<String>) -> Result<String> {
    let id = id.ok_or_else(|| Error::invalid("subscriptionId is required"))?;
    ctx.check_id("subscriptionId", &id)?;
    Ok(id)
}

/// A page size from a frame: a whole number in 1..=max, `default` when absent.
fn page_size(name: &str, value: Option<&Value>, default: usize, max: usize) -> Result<usize> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{name} must be a whole number between 1 and {max}, got {value}"
            ))
        })
}

fn subscription_error(subscription_id: &str, error: &Error) -> Result<ServerFrame> {
    Ok(ServerFrame::subscription_error(
        subscription_id,
        error_body(error),
    ))
}

impl WsSubscribe {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::Subscribe(body) = frame.frame()? else {
            return Err(misrouted(frame, "subscribe"));
        };
        let sub_id = subscription_id(&self.ctx, body.subscription_id)?;
        let identity = identity(event)?;
        let connection_id = connection_id(event)?;
        match self
            .subscribe_to(
                &identity,
                connection_id,
                &sub_id,
                body.conversation_id,
                body.limit,
                frame,
            )
            .await
        {
            Ok(reply) => Ok(reply),
            Err(e @ Error::Internal(_)) => Err(e),
            Err(e) => subscription_error(&sub_id, &e),
        }
    }

    async fn subscribe_to(
        &self,
        identity: &Identity,
        connection_id: &str,
        sub_id: &str,
        conversation_id: Option<String>,
        limit: Option<Value>,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ctx = &self.ctx;
        let limits = &ctx.config().limits;
        let cid = conversation_id.ok_or_else(|| Error::invalid("conversationId is required"))?;
        crate::ids::validate_id("conversationId", &cid, limits.max_id_chars)?;
        let limit = page_size(
            "limit",
            limit.as_ref(),
            limits.default_page,
            limits.max_page,
        )?;
        let Identity::User { user_id, .. } = identity else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };

        // 1. Only participants may subscribe (404 otherwise, as over HTTP).
        ctx.access_items(&*self.items, identity, &cid, false)
            .await?;
        // 2. Store the subscription before reading the window, so that a message sent meanwhile is
        //    pushed rather than lost. Its window starts "now" (the smallest id a message sent from
        //    now on can have) until the first window is known: older messages are not new to this
        //    subscriber, even when the stream delivers their creation late.
        let now = ctx.now_ms();
        let record = SubscriptionRecord {
            conversation_id: cid.clone(),
            connection_id: connection_id.to_string(),
            subscription_id: sub_id.to_string(),
            user_id: user_id.clone(),
            window_start: Some(crate::ids::message_id_floor(now)),
            // Set from the connection by the store.
            expires_at: 0,
        };
        match self.subscriptions.put_subscription(&record, now).await? {
            SubscribeOutcome::Subscribed => {}
            SubscribeOutcome::ConnectionGone => {
                return Err(Error::invalid("this connection is closed"))
            }
            SubscribeOutcome::TooMany => {
                return Err(Error::LimitExceeded(format!(
                    "a connection may hold at most {} subscriptions",
                    crate::config::connections::MAX_SUBSCRIPTIONS_PER_CONNECTION
                )))
            }
        }
        // 3. The first window, then widen the subscription's window back to it.
        let page = match self.messages.run(identity, &cid, Some(limit), None).await {
            Ok(page) => page,
            Err(e) => {
                let _ = self
                    .removals
                    .delete_subscription(connection_id, sub_id)
                    .await;
                return Err(e);
            }
        };
        let (messages, loaded_all) = window_page(sub_id, page, frame)?;
        let start = window_start(&messages, loaded_all);
        self.windows
            .extend_window(&cid, connection_id, sub_id, start, now)
            .await?;
        Ok(ServerFrame::subscription_active(
            sub_id, messages, loaded_all,
        ))
    }
}

impl WsLoadMore {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::LoadMore(body) = frame.frame()? else {
            return Err(misrouted(frame, "loadMore"));
        };
        let ctx = &self.ctx;
        let sub_id = subscription_id(ctx, body.subscription_id)?;
        let limits = &ctx.config().limits;
        let count = page_size(
            "count",
            body.count.as_ref(),
            limits.default_page,
            limits.max_page,
        )?;
        let identity = identity(event)?;
        let connection_id = connection_id(event)?;
        let now = ctx.now_ms();
        let Some(sub) = self
            .subscriptions
            .get_subscription(connection_id, &sub_id, now)
            .await?
        else {
            return Err(Error::not_found(format!(
                "no subscription {sub_id:?} on this connection"
            )));
        };
        if sub.is_conversation_list() {
            return self.more_conversations(&identity, &sub, count, frame).await;
        }
        let cid = sub.conversation_id.as_str();
        let Some(start) = sub.window_start.as_deref() else {
            // The window already holds the whole conversation: nothing to read but the caller's
            // access, which may be gone.
            return match ctx.access_items(&*self.items, &identity, cid, false).await {
                Ok(_) => Ok(ServerFrame::subscription_active(&sub_id, Vec::new(), true)),
                Err(e @ Error::NotFound(_)) => {
                    self.removals
                        .delete_subscription(connection_id, &sub_id)
                        .await?;
                    subscription_error(&sub_id, &e)
                }
                Err(e) => Err(e),
            };
        };
        let page = match self
            .messages
            .run(&identity, cid, Some(count), Some(start))
            .await
        {
            Ok(page) => page,
            // No longer a participant: the subscription ends.
            Err(e @ Error::NotFound(_)) => {
                self.removals
                    .delete_subscription(connection_id, &sub_id)
                    .await?;
                return subscription_error(&sub_id, &e);
            }
            Err(e) => return Err(e),
        };
        let (messages, loaded_all) = window_page(&sub_id, page, frame)?;
        let new_start = window_start(&messages, loaded_all);
        if !self
            .windows
            .extend_window(cid, connection_id, &sub_id, new_start, now)
            .await?
        {
            return Err(Error::not_found(format!(
                "no subscription {sub_id:?} on this connection"
            )));
        }
        Ok(ServerFrame::subscription_active(
            &sub_id, messages, loaded_all,
        ))
    }
}

/// The messages of a `subscription` reply: each whole or in its short form, as many as fit in
/// the frame; `loadedAll` only when every one fit and none older remains.
fn window_page(
    sub_id: &str,
    page: MessagePageSnapshot,
    frame: &Frame,
) -> Result<(Vec<FrameMessage>, bool)> {
    let messages = page
        .data
        .into_iter()
        .map(FrameMessage::of)
        .collect::<Result<Vec<_>>>()?;
    let fitted = fit_frame(messages, frame, |cut| {
        ServerFrame::subscription_active(sub_id, Vec::new(), page.loaded_all && !cut)
    })?;
    Ok((fitted.items, page.loaded_all && !fitted.cut))
}

/// Where a window starts after a reply: at its oldest message, unless it holds everything.
fn window_start(messages: &[FrameMessage], loaded_all: bool) -> Option<&str> {
    match messages.last() {
        Some(oldest) if !loaded_all => Some(oldest.id()),
        _ => None,
    }
}

/// The longest run of `items` that fits in one reply frame to `frame` (its `requestId`
/// echoed), whose envelope `reply(cut)` is the reply with no items. The first item always fits
/// (`config::sizes`): a page that stops early holds at least one, so paging goes on.
fn fit_frame<T: Serialize>(
    items: Vec<T>,
    frame: &Frame,
    reply: impl Fn(bool) -> ServerFrame,
) -> Result<Fitted<T>> {
    let envelope = frame_len(reply(true), frame.request_id.as_ref())?
        .max(frame_len(reply(false), frame.request_id.as_ref())?);
    let fitted = sizes::fit(items, envelope, FRAME_MAX_BYTES, Wire::Frame)?;
    if fitted.cut && fitted.items.is_empty() {
        return Err(Error::Internal(
            "the first item of a page does not fit in a frame".into(),
        ));
    }
    Ok(fitted)
}

/// Bytes of reply `reply` as sent, with `request_id` echoed.
pub fn frame_len(reply: ServerFrame, request_id: Option<&Value>) -> Result<usize> {
    Ok(echo(&reply, request_id)?.len())
}

/// Refuses a frame whose `requestId` is too big to echo (`REQUEST_ID_MAX_BYTES` as JSON); the
/// error frame does not echo it.
fn echoable(frame: Frame) -> Result<Frame> {
    if let Some(id) = &frame.request_id {
        let len = sizes::json_len(id)?;
        if len > REQUEST_ID_MAX_BYTES {
            return Err(Error::invalid(format!(
                "requestId is {len} bytes as JSON; the most is {REQUEST_ID_MAX_BYTES}"
            )));
        }
    }
    Ok(frame)
}

impl WsUnsubscribe {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::Unsubscribe(body) = frame.frame()? else {
            return Err(misrouted(frame, "unsubscribe"));
        };
        let sub_id = subscription_id(&self.ctx, body.subscription_id)?;
        // Unsubscribing an unknown or ended subscription is a no-op that succeeds.
        let topic = self
            .removals
            .delete_subscription(connection_id(event)?, &sub_id)
            .await?;
        if topic.is_some_and(|t| t.starts_with(CONVERSATION_LIST_TOPIC)) {
            return Ok(ServerFrame::conversations(
                &sub_id,
                ConversationsState::Unsubscribed,
            ));
        }
        Ok(ServerFrame::unsubscribed(&sub_id))
    }
}

impl WsSubscribeConversations {
    async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let ClientFrame::SubscribeConversations(body) = frame.frame()? else {
            return Err(misrouted(frame, "subscribeConversations"));
        };
        let ctx = &self.ctx;
        let sub_id = subscription_id(ctx, body.subscription_id)?;
        let limits = &ctx.config().limits;
        let limit = match page_size(
            "limit",
            body.limit.as_ref(),
            limits.default_conversation_page,
            limits.max_page,
        ) {
            Ok(limit) => limit,
            Err(e) => return conversations_error(&sub_id, &e),
        };
        let identity = identity(event)?;
        let Identity::User { user_id, .. } = &identity else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        let connection_id = connection_id(event)?;
        let topic = conversation_list_topic(user_id);
        // Stored before the first window is read, so that a change meanwhile is pushed rather
        // than lost; its window holds only what happens from now on until the first window is
        // known.
        let now = ctx.now_ms();
        let record = SubscriptionRecord {
            conversation_id: topic.clone(),
            connection_id: connection_id.to_string(),
            subscription_id: sub_id.clone(),
            user_id: user_id.clone(),
            window_start: Some(crate::store::schema::activity_key(now, "")),
            expires_at: 0,
        };
        match self.subscriptions.put_subscription(&record, now).await? {
            SubscribeOutcome::Subscribed => {}
            SubscribeOutcome::ConnectionGone => {
                return conversations_error(&sub_id, &Error::invalid("this connection is closed"))
            }
            SubscribeOutcome::TooMany => {
                let e = Error::LimitExceeded(format!(
                    "a connection may hold at most {} subscriptions",
                    crate::config::connections::MAX_SUBSCRIPTIONS_PER_CONNECTION
                ));
                return conversations_error(&sub_id, &e);
            }
        }
        let page = self.lists.page(user_id, None, limit).await?;
        let (conversations, loaded_all, start) = conversations_window(&sub_id, page, frame)?;
        self.windows
            .extend_window(&topic, connection_id, &sub_id, start.as_deref(), now)
            .await?;
        Ok(ServerFrame::conversations(
            &sub_id,
            ConversationsState::Active {
                conversations,
                loaded_all,
            },
        ))
    }
}

impl WsLoadMore {
    /// `loadMore` on a conversation-list subscription: the conversations placed before its
    /// window.
    async fn more_conversations(
        &self,
        identity: &Identity,
        sub: &SubscriptionRecord,
        count: usize,
        frame: &Frame,
    ) -> Result<ServerFrame> {
        let sub_id = &sub.subscription_id;
        let Identity::User { user_id, .. } = identity else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        let active = |conversations, loaded_all| {
            ServerFrame::conversations(
                sub_id,
                ConversationsState::Active {
                    conversations,
                    loaded_all,
                },
            )
        };
        let Some(start) = sub.window_start.as_deref() else {
            return Ok(active(Vec::new(), true));
        };
        let page = self.lists.page(user_id, Some(start), count).await?;
        let (conversations, loaded_all, new_start) = conversations_window(sub_id, page, frame)?;
        let now = self.ctx.now_ms();
        if !self
            .windows
            .extend_window(
                &sub.conversation_id,
                &sub.connection_id,
                sub_id,
                new_start.as_deref(),
                now,
            )
            .await?
        {
            return Err(Error::not_found(format!(
                "no subscription {sub_id:?} on this connection"
            )));
        }
        Ok(active(conversations, loaded_all))
    }
}

/// The conversations of a `conversations` reply, as many as fit in the frame; whether the
/// window then holds the whole list; and where the window starts (`None`: everything).
fn conversations_window(
    sub_id: &str,
    page: ConversationPage,
    frame: &Frame,
) -> Result<(Vec<FrameConversation>, bool, Option<String>)> {
    let conversations = page
        .data
        .into_iter()
        .map(FrameConversation::of)
        .collect::<Result<Vec<_>>>()?;
    let fitted = fit_frame(conversations, frame, |cut| {
        ServerFrame::conversations(
            sub_id,
            ConversationsState::Active {
                conversations: Vec::new(),
                loaded_all: page.loaded_all && !cut,
            },
        )
    })?;
    let loaded_all = page.loaded_all && !fitted.cut;
    let start = match fitted.items.len() {
        0 => None,
        n if !loaded_all => page.positions.get(n - 1).cloned(),
        _ => None,
    };
    Ok((fitted.items, loaded_all, start))
}

fn conversations_error(subscription_id: &str, error: &Error) -> Result<ServerFrame> {
    Ok(ServerFrame::conversations(
        subscription_id,
        ConversationsState::Error {
            error: error_body(error),
        },
    ))
}

// ---- Frames out ----

fn error_body(error: &Error) -> ErrorBody {
    if let Error::Internal(detail) = error {
        tracing::error!(detail, "internal error in a WebSocket route");
    }
    ErrorBody::from(error)
}

/// `{type: "error", error: {code, message}}`.
pub fn error_frame(error: &Error) -> ServerFrame {
    ServerFrame::Error(ErrorReply {
        error: error_body(error),
    })
}

/// The text of `reply` with `requestId` added as its last field. Written as text, never
/// through `serde_json::Value`, so that inbox messages keep their numbers exactly.
fn echo(reply: &ServerFrame, request_id: Option<&Value>) -> Result<String> {
    let mut text = reply.to_text()?;
    if let Some(id) = request_id {
        // A frame is a JSON object with at least its `type`: `{"type":...}`.
        if text.ends_with('}') && text.len() > 2 {
            text.pop();
            text.push_str(",\"requestId\":");
            text.push_str(&sizes::json_text(id)?);
            text.push('}');
        }
    }
    Ok(text)
}

/// A route response with no body: API Gateway sends nothing back.
fn no_reply() -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response
}

fn reply_response(reply: ServerFrame, request_id: Option<Value>) -> ApiGatewayProxyResponse {
    let error_text = |error: Error| {
        // Cannot fail: the frame is two strings (and the `requestId` was measured).
        echo(&error_frame(&error), request_id.as_ref()).unwrap_or_default()
    };
    let text = match echo(&reply, request_id.as_ref()) {
        Ok(text) if text.len() <= FRAME_MAX_BYTES => text,
        // Every reply is built to fit; one that does not is a bug, answered with an error
        // rather than refused by API Gateway.
        Ok(text) => error_text(Error::Internal(format!(
            "a reply of {} bytes does not fit in a frame ({FRAME_MAX_BYTES})",
            text.len()
        ))),
        Err(error) => error_text(error),
    };
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response.body = Some(Body::Text(text));
    response
}

/// The reply frame in a route's response, if any (what API Gateway sends back to the client).
pub fn reply_body(response: &ApiGatewayProxyResponse) -> Option<String> {
    match &response.body {
        Some(Body::Text(text)) => Some(text.clone()),
        Some(Body::Binary(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// The `action` of a frame body, as API Gateway's `$request.body.action` reads it.
pub fn frame_action(body: &str) -> Option<String> {
    let value: HashMap<String, Value> = serde_json::from_str(body).ok()?;
    value.get("action")?.as_str().map(str::to_string)
}
