//! The edge's own OpenAPI 3.1 document (`GET /openapi.json`) and Swagger UI (`GET /docs`),
//! both served from the binary: the UI's files are compiled in (`utoipa-swagger-ui`, vendored),
//! so `/docs` works without any network.
//!
//! How the document stays true:
//!
//! - every route of the edge is registered through `utoipa-axum`'s `routes!`, which takes the
//!   path and the methods of the axum route from the handler's own `#[utoipa::path]`: a route
//!   cannot be served under another path or method than the one documented;
//! - what the layers do to every route of a kind (the request id, the deadline's 503, the rate
//!   limit's 429, the token guard's 401 and 403, the JSON body's 400, 413 and 415) is added
//!   here, by [`finish`], from the same facts the layers act on, rather than repeated on each
//!   handler;
//! - the tests compare the document with the routes of the built router itself (so a route
//!   added with a plain `.route(..)` fails them), check it as OpenAPI 3.1 (`oas3`), and check
//!   that every `$ref` resolves and every path parameter is declared.
//!
//! Errors share one schema, [`ErrorBody`]: an operation's attribute names its statuses with a
//! description; [`finish`] gives every error response that schema.

pub(crate) mod orders;
mod schemas;

use std::sync::{Arc, OnceLock};

use axum::Extension;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, HeaderBuilder, OpenApi, Ref, RefOr, Required, Response as ResponseObject,
    ResponseBuilder,
};
use utoipa::{Modify, PartialSchema, ToSchema};
use utoipa_swagger_ui::Config;

pub(crate) use schemas::*;

use super::error::ApiError;

/// Where the document is served.
pub(crate) const DOCUMENT_PATH: &str = "/openapi.json";
/// The name of the bearer security scheme (JWT) in the document.
pub(crate) const BEARER: &str = "bearer";

/// The one error shape of every route (`API.md`: Errors).
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    code: ErrorCode,
    /// For people: names the field or the resource.
    message: String,
    /// The request's id, as in its `x-request-id` header.
    request_id: Option<String>,
}

/// The machine-readable code of an error, one per status.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // a schema only: the tests check it against `error::code_for`
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    /// 400
    InvalidRequest,
    /// 401
    Unauthenticated,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422
    Unprocessable,
    /// 429
    RateLimited,
    /// 503
    Unavailable,
    /// 504
    OutcomeUnknown,
    /// 500
    Internal,
}

/// The document's fixed part: its title, the bearer scheme, the error schema, the tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Troupe",
        description = "The HTTP edge of a Troupe node. Every node serves the same API: a client \
            may send any request to any node. JSON in and out; ids are UUIDs; money is integer \
            cents; times are RFC 3339 UTC strings. Every response carries `x-request-id` (the \
            client's, echoed when it sent a sane one). Every error has the body \
            `{\"error\": {\"code\", \"message\", \"request_id\"}}`; a 503 or 429 carries \
            `Retry-After`.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "users", description = "Users and wallets"),
        (name = "products", description = "Products and stock"),
        (name = "orders", description = "Orders, carried out by the order saga. A new order \
            naming a product that does not exist is refused with 404: the order is not created \
            (never a cancelled order)."),
        (name = "admin", description = "Operations: an admin's token"),
        (name = "health", description = "Liveness, readiness, metrics: open"),
        (name = "docs", description = "This document and its UI: open"),
        (name = "dashboard", description = "The live dashboard's page: open (its data comes \
            from the admin routes)"),
    )
)]
pub(crate) struct Base;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <token>` from `POST /api/v1/auth/login`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document of `routes` (what `routes!` gathered) completed with what the edge's layers
/// do to every route of a kind; see the module docs.
pub(crate) fn finish(routes: OpenApi) -> OpenApi {
    let mut openapi = <Base as utoipa::OpenApi>::openapi();
    openapi.merge(routes);
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete(path, operation);
        }
    }
    openapi
}

/// One operation completed: the responses the layers add, the error body, the headers.
fn complete(path: &str, operation: &mut Operation) {
    let limited = path.starts_with("/api/") || path.starts_with("/admin/");
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let served_by_a_service = path.starts_with("/api/v1/") && path != "/api/v1/auth/login";
    let added: [(bool, u16, &str); 8] = [
        (
            has_body,
            400,
            "The body is not valid JSON, or a field is missing, of the wrong type or out of \
             range; the message names the field",
        ),
        (
            secured,
            401,
            "No valid bearer token: missing, malformed, badly signed, expired, or of another \
             issuer or audience",
        ),
        (
            path.starts_with("/admin/"),
            403,
            "The token is not an admin's",
        ),
        (
            served_by_a_service,
            404,
            "The service behind this route is not configured in this cluster",
        ),
        (
            has_body,
            413,
            "The body is over the limit (`[http] body_limit_bytes`, 64 KiB by default)",
        ),
        (
            has_body,
            415,
            "The body is not sent as `Content-Type: application/json`",
        ),
        (
            limited,
            429,
            "Over the client's rate limit (`[http] rate_limit_per_second`, off by default); \
             retry after `Retry-After` seconds",
        ),
        (
            limited,
            503,
            "Unavailable now: the node that owns the data is down, or the request's deadline \
             passed; nothing was done and the client may retry after `Retry-After` seconds",
        ),
    ];
    let responses = &mut operation.responses.responses;
    for (applies, status, description) in added {
        if !applies {
            continue;
        }
        match responses.get_mut(&status.to_string()) {
            None => {
                responses.insert(
                    status.to_string(),
                    ResponseBuilder::new().description(description).into(),
                );
            }
            // The handler's own reasons for the status, and the layers' too.
            Some(RefOr::T(own)) if !own.description.contains(description) => {
                own.description = format!("{}. Or: {description}", own.description);
            }
            Some(_) => {}
        }
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            decorate(status, response);
        }
    }
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let named = |p: &RefOr<Parameter>| matches!(p, RefOr::T(p) if p.name == "x-request-id");
    if !parameters.iter().any(named) {
        parameters.push(RefOr::T(
            ParameterBuilder::new()
                .name("x-request-id")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "The client's id for this request (up to 128 printable ASCII characters), \
                     echoed in the response; a new UUID otherwise",
                ))
                .schema(Some(String::schema()))
                .build(),
        ));
    }
}

/// `x-request-id` on every response; `Retry-After` on 429 and 503; the error body on errors.
fn decorate(status: &str, response: &mut ResponseObject) {
    response
        .headers
        .entry("x-request-id".into())
        .or_insert_with(|| {
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some("The request's id (the client's, or a new UUID)"))
                .build()
                .into()
        });
    if status == "429" || status == "503" {
        response
            .headers
            .entry("Retry-After".into())
            .or_insert_with(|| {
                HeaderBuilder::new()
                    .schema(Some(u32::schema()))
                    .description(Some("Seconds to wait before retrying (at least 1)"))
                    .build()
                    .into()
            });
    }
    let is_error = status.starts_with('4') || status.starts_with('5');
    if is_error && response.content.is_empty() {
        response.content.insert(
            "application/json".into(),
            Content::new(Some(Ref::from_schema_name("ErrorBody"))).into(),
        );
    }
}

/// The document as served: rendered once.
#[derive(Clone, Debug)]
pub(crate) struct Served(Arc<String>);

impl Served {
    /// `openapi` rendered as JSON.
    pub(crate) fn new(openapi: &OpenApi) -> Self {
        // Rendering plain data to JSON cannot fail; an empty document would fail the tests.
        Self(Arc::new(openapi.to_json().unwrap_or_default()))
    }
}

/// The Swagger UI's settings: the document is ours, and no validator badge (it would call out
/// to a public validator from the reader's browser).
fn ui_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(Config::new([DOCUMENT_PATH]).validator_url("none")))
        .clone()
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = serde_json::Value)))]
pub(crate) async fn document(Extension(served): Extension<Served>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        served.0.as_str().to_owned(),
    )
        .into_response()
}

/// `GET /docs`: to the UI's page, so that its relative links resolve under `/docs/`.
#[utoipa::path(get, path = "/docs", tag = "docs",
    responses((status = 303, description = "To `/docs/`, the Swagger UI",
        headers(("Location" = String, description = "`/docs/`")))))]
pub(crate) async fn docs_redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// `GET /docs/`: the Swagger UI's page, reading `/openapi.json`.
#[utoipa::path(get, path = "/docs/", tag = "docs",
    responses((status = 200, description = "The Swagger UI (HTML); its scripts and styles are \
        served by this node under `/docs/`", content_type = "text/html", body = String)))]
pub(crate) async fn docs_index() -> Result<Response, ApiError> {
    ui_file("index.html")
}

/// `GET /docs/{file}`: a file of the Swagger UI.
#[utoipa::path(get, path = "/docs/{file}", tag = "docs",
    params(("file" = String, Path, description = "A file of the UI, e.g. `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file (JavaScript, CSS, HTML or PNG)"),
        (status = 404, description = "The UI has no such file")))]
pub(crate) async fn docs_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    ui_file(&file)
}

fn ui_file(name: &str) -> Result<Response, ApiError> {
    let file = utoipa_swagger_ui::serve(name, ui_config())
        .map_err(|e| ApiError::Internal(format!("swagger ui file {name}: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("the docs have no file {name:?}")))?;
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        file.bytes.into_owned(),
    )
        .into_response())
}

#[cfg(test)]
mod tests;
