//! The route tables' types and matching. The tables themselves are generated from the one
//! declaration per operation in `http.rs` (`HTTP_ROUTES`) and `ws.rs` (`WS_ROUTES`); the local
//! gateway dispatches with them, and tests check that `template.yaml` and `docs/openapi.yaml`
//! declare exactly these routes and that each function's IAM policy matches its ports.

use crate::ports::Port;

/// One HTTP API route: method, path template (API Gateway syntax), the function behind it and
/// the storage ports that function's operation holds.
#[derive(Debug, Clone, Copy)]
pub struct HttpRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// The binary name in `functions/` and the function's logical name in `template.yaml`
    /// (kebab-case here, PascalCase + `Function` there).
    pub function: &'static str,
    /// The ports of the operation (what its IAM policy must grant).
    pub ports: fn() -> Vec<Port>,
}

pub use crate::http::HTTP_ROUTES;
pub use crate::ws::WS_ROUTES;

/// One WebSocket API route: its route key (a frame's `action`, or `$connect`, `$disconnect`,
/// `$default`) and the function behind it.
#[derive(Debug, Clone, Copy)]
pub struct WsRoute {
    pub route_key: &'static str,
    /// The binary name in `functions/` (see `HttpRoute::function`).
    pub function: &'static str,
    /// The ports of the route's operation.
    pub ports: fn() -> Vec<Port>,
}

/// The `$connect` route's REQUEST authorizer (identity source: the `token` query parameter).
pub const WS_AUTHORIZER_FUNCTION: &str = "ws-authorizer";

/// The WebSocket route a message frame goes to, as API Gateway selects it with
/// `$request.body.action`: the route whose key is the action, else `$default`. The `$` routes
/// cannot be selected by a frame.
pub fn ws_route_for_action(action: Option<&str>) -> &'static WsRoute {
    let found = action
        .filter(|a| !a.starts_with('$'))
        .and_then(|a| WS_ROUTES.iter().find(|r| r.route_key == a));
    match found {
        Some(route) => route,
        None => ws_route("$default"),
    }
}

/// The WebSocket route with this key; every key used here is in `WS_ROUTES`.
pub fn ws_route(route_key: &str) -> &'static WsRoute {
    WS_ROUTES
        .iter()
        .find(|r| r.route_key == route_key)
        .unwrap_or(&WS_ROUTES[WS_ROUTES.len() - 1])
}

/// Matches a concrete request path against a route's template, returning the path parameters
/// (still percent-encoded, as API Gateway passes them in `pathParameters` after decoding; see
/// the gateway for decoding).
pub fn match_path<'a>(template: &str, path: &'a str) -> Option<PathParams<'a>> {
    let mut params = Vec::new();
    let mut want = template.trim_matches('/').split('/');
    let mut got = path.trim_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if g.is_empty() {
                        return None;
                    }
                    params.push((name.to_string(), g));
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Path parameters by name, each still percent-encoded.
pub type PathParams<'a> = Vec<(String, &'a str)>;

/// Finds the route for a method and path. `Err(true)` means the path exists with another method.
pub fn find_route<'a>(
    method: &str,
    path: &'a str,
) -> Result<(&'static HttpRoute, PathParams<'a>), bool> {
    let mut path_exists = false;
    for route in HTTP_ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Ok((route, params));
            }
            path_exists = true;
        }
    }
    Err(path_exists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_params() {
        let (route, params) = find_route(
            "PUT",
            "/v1/conversations/c1/messages/m1/reactions/%F0%9F%91%8D",
        )
        .unwrap();
        assert_eq!(route.function, "add-reaction");
        assert_eq!(params[2], ("emoji".to_string(), "%F0%9F%91%8D"));
        assert!(find_route("POST", "/v1/users/u1").unwrap_err());
        assert!(!find_route("GET", "/v1/nope").unwrap_err());
        assert!(find_route("GET", "/v1/users/").is_err());
    }

    #[test]
    fn websocket_frames_route_by_action() {
        assert_eq!(
            ws_route_for_action(Some("loadMore")).function,
            "ws-load-more"
        );
        assert_eq!(ws_route_for_action(Some("nope")).route_key, "$default");
        assert_eq!(ws_route_for_action(Some("$connect")).route_key, "$default");
        assert_eq!(ws_route_for_action(None).route_key, "$default");
        assert_eq!(ws_route("$disconnect").function, "ws-disconnect");
    }

    #[test]
    fn every_function_name_is_unique_per_route() {
        let mut seen = std::collections::HashSet::new();
        for r in HTTP_ROUTES {
            assert!(seen.insert((r.method, r.path)), "duplicate route {r:?}");
        }
    }
}
