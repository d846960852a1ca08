//! A Troupe node: configuration, the HTTP edge and the command line. It knows the runtime's
//! public surface and nothing of actor internals.
//!
//! # Layout
//!
//! - [`cli`]: the `troupe` command (`node`, `up`, `status`, `bench`, `load`).
//! - [`exit`]: its exit codes, shared by `cli` and the subcommands.
//! - [`config`]: `cluster.toml` to a validated [`config::NodeConfig`].
//! - [`auth`]: access tokens (JWT HS256): issued at login, checked on every protected route.
//! - [`bootstrap`]: the business services on this node, and the administrator's account.
//! - [`secrets`]: the cluster cookie and the token key: from the environment, the file, or
//!   generated once.
//! - [`edge`]: the axum router, its middleware and the JSON error shape.
//! - [`serve`]: one node's life: start the cluster, serve HTTP, shut down within a deadline.
//! - [`up`]: `troupe up`, the local cluster as child processes.
//! - [`logging`]: tracing output, JSON or human-readable.
//! - `traces`: trace spans exported over OTLP/HTTP, when an endpoint is configured.
//! - `load`: `troupe load`, a load generator and invariant checker over the HTTP API.
//! - `status`, `bench_cmd`: `troupe status` and `troupe bench`, which ask a node's admin API
//!   through `admin_client`.
//! - [`metrics`]: the process's Prometheus recorder, which `/metrics` renders.

mod admin_client;
pub mod auth;
mod bench_cmd;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod edge;
pub mod exit;
mod load;
pub mod logging;
pub mod metrics;
pub mod secrets;
pub mod serve;
mod status;
mod traces;
pub mod up;
