//! The business services of Troupe (users, inventory, payments, orders, notifications and the
//! order saga), built on `troupe-runtime` and knowing nothing of HTTP.
//!
//! Each service is an entity type ([`troupe_runtime::entity`]): its state per id, its
//! commands, its domain errors (each with the kind the edge turns into a status), and the
//! events it publishes or subscribes to ([`troupe_runtime::events`]). The node wires them to
//! its runtime and its HTTP edge.
//!
//! - [`users`]: profiles and credentials, with [`users::Emails`] keeping emails unique.
//! - [`payments`]: a wallet per user.
//! - [`inventory`]: products and their stock, with [`inventory::Skus`] keeping skus unique.
//! - [`orders`]: the order aggregate.
//! - [`order_views`]: the orders of each user, the query side (CQRS).
//! - [`notifications`]: what each user is told about their orders.

pub mod ids;
pub mod inventory;
pub mod notifications;
pub mod order_views;
pub mod orders;
pub mod payments;
pub mod recent;
pub mod users;
