//! The HTTP edge: every node serves the same API (`API.md`), so a client may talk to any node.
//!
//! [`router`] is a plain function of [`AppState`], tested without a socket. Every request passes
//! through, outermost first: the edge middleware (request id, span, access log, JSON errors), a
//! deadline (503 with `Retry-After` when it passes) and the body-size limit (413).
//!
//! Every route is registered from its handler's OpenAPI annotation, and the node serves the
//! document they make at `/openapi.json`, with a Swagger UI at `/docs` ([`openapi`]), and a
//! live dashboard at `/` ([`dashboard`]), which reads the cluster's counters gathered by its
//! node (`cluster_metrics`: the edge's own built-in service, `troupe.counters`, answers the
//! peers).

mod admin;
pub(crate) mod api;
mod cluster_metrics;
mod dashboard;
pub mod error;
mod events;
pub mod extract;
mod guard;
pub(crate) mod head;
mod health;
mod kv;
mod metrics;
pub mod middleware;
mod openapi;
mod rate;
mod sagas;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use troupe_runtime::{ClusterView, Runtime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::HttpSettings;
use error::ApiError;

/// What the handlers share: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Runtime,
    /// Checks (and issues) access tokens.
    tokens: crate::auth::Tokens,
    http_addrs: HashMap<String, SocketAddr>,
    /// The recorder the runtime records into (the process's: [`crate::metrics::install`]).
    metrics: PrometheusHandle,
    /// Lets a few password hashes run at once.
    passwords: crate::auth::password::Gate,
}

impl AppState {
    /// State over this node's `runtime`, knowing every node's HTTP address, serving the metrics
    /// of the recorder behind `metrics`.
    pub fn new(
        runtime: Runtime,
        tokens: crate::auth::Tokens,
        http_addrs: HashMap<String, SocketAddr>,
        metrics: PrometheusHandle,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                tokens,
                http_addrs,
                metrics,
                passwords: crate::auth::password::Gate::for_this_machine(),
            }),
        }
    }

    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    pub(crate) fn tokens(&self) -> &crate::auth::Tokens {
        &self.inner.tokens
    }

    /// Where password hashes and checks wait their turn.
    pub(crate) fn passwords(&self) -> &crate::auth::password::Gate {
        &self.inner.passwords
    }

    pub(crate) fn node_id(&self) -> &str {
        self.inner.runtime.node().as_str()
    }

    pub(crate) fn cluster_view(&self) -> ClusterView {
        self.inner.runtime.cluster().view()
    }

    pub(crate) fn http_addr_of(&self, node: &str) -> Option<SocketAddr> {
        self.inner.http_addrs.get(node).copied()
    }

    /// A handle that does not keep the state alive: for what the runtime holds (the runtime
    /// is part of the state, so a strong one would be a cycle).
    pub(crate) fn downgrade(&self) -> WeakAppState {
        WeakAppState(Arc::downgrade(&self.inner))
    }

    /// Hosts the edge's own service on this node (`troupe.counters`, which answers the
    /// peers' `cluster_metrics` requests). Its spec must be among the runtime's settings:
    /// [`declare_services`].
    pub async fn host_services(&self) -> troupe_runtime::Result<()> {
        self.runtime()
            .host(cluster_metrics::Counters::new(self))
            .await
            .map(|_| ())
    }
}

/// [`AppState`], weakly.
#[derive(Clone, Debug)]
pub(crate) struct WeakAppState(std::sync::Weak<Inner>);

impl WeakAppState {
    /// The state, unless it was dropped.
    pub(crate) fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(|inner| AppState { inner })
    }
}

/// Adds the edge's own services to those the runtime will know (before it starts), so that
/// [`AppState::host_services`] can host them.
pub fn declare_services(settings: &mut troupe_runtime::RuntimeSettings) {
    settings.services.insert(
        cluster_metrics::Counters::NAME.to_string(),
        cluster_metrics::Counters::spec(),
    );
}

/// The edge's routes and middleware.
pub fn router(state: AppState, http: &HttpSettings) -> Router {
    let (routes, document) = documented_routes(&state, http).split_for_parts();
    let document = openapi::Served::new(&openapi::finish(document));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(Extension(document))
        .layer(axum::middleware::from_fn_with_state(
            http.rate_limit
                .map(|(per_second, burst)| Arc::new(rate::Limiter::new(per_second, burst))),
            rate::limit,
        ))
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(axum::middleware::from_fn(middleware::edge))
}

/// Every route, each registered by `routes!` from its handler's `#[utoipa::path]` (so it is
/// served exactly where the document says), with the layers of its group; and the document
/// they make ([`openapi`]).
fn documented_routes(state: &AppState, http: &HttpSettings) -> OpenApiRouter<AppState> {
    // Every /admin route needs an admin's token (checked only on routes that exist).
    let admin_only = axum::middleware::from_fn_with_state(state.clone(), guard::admin_only);
    // The benchmark runs for up to a minute: it has a deadline of its own.
    let long = OpenApiRouter::new()
        .routes(routes!(admin::bench))
        .route_layer(admin_only.clone())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            admin::bench_timeout(),
        ));
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::cluster))
        .routes(routes!(cluster_metrics::cluster_metrics))
        .routes(routes!(admin::chaos_kill))
        .routes(routes!(admin::echo))
        .routes(routes!(kv::get, kv::put))
        .routes(routes!(events::events))
        .routes(routes!(events::redrive))
        .routes(routes!(events::view, events::emit))
        .routes(routes!(sagas::list))
        .routes(routes!(sagas::retry))
        .routes(routes!(sagas::compensate))
        .route_layer(admin_only);
    // The document and its UI are open, like /health; so is the dashboard's page (its data
    // comes from the guarded routes).
    let docs = OpenApiRouter::new()
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::script))
        .routes(routes!(dashboard::script_lib))
        .routes(routes!(dashboard::style))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs_redirect))
        .routes(routes!(openapi::docs_index))
        .routes(routes!(openapi::docs_file));
    OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::metrics))
        .merge(admin)
        .merge(api::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            http.request_timeout,
        ))
        .merge(long)
        .merge(docs)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not accept {method}", uri.path()))
}

#[cfg(test)]
mod tests;
