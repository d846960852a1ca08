//! The event bus: services talk through events published on topics, as over an AMQP topic
//! exchange, with no broker to run.
//!
//! # The model
//!
//! An event is published on a [`Topic`], a name of dot-separated words such as
//! `order.created`. A service declares [`Subscription`]s, each with a [`Pattern`] over topics;
//! an event goes to every subscription whose pattern matches its topic. Patterns are those of
//! an AMQP topic exchange (RabbitMQ's routing keys):
//!
//! - a plain word matches exactly that word;
//! - `*` matches exactly one word, whatever it is;
//! - `#` matches zero or more words.
//!
//! | pattern       | matches                                  | does not match            |
//! |---------------|------------------------------------------|---------------------------|
//! | `order.*`     | `order.created`                          | `order`, `order.a.b`      |
//! | `order.#`     | `order`, `order.created`, `order.a.b`    | `orders`, `user.created`  |
//! | `#.created`   | `created`, `order.created`, `a.b.created`| `created.x`               |
//! | `a.#.b`       | `a.b`, `a.x.b`, `a.x.y.b`                | `a`, `a.b.c`              |
//! | `*.#`         | every topic (it has at least one word)   |                           |
//! | `#`           | every topic                              |                           |
//!
//! Topics and patterns are validated when parsed, so a name that reaches the bus is always
//! well-formed: 1 to 255 bytes, words non-empty and made of ASCII letters, digits, `_` and
//! `-`; wildcards only in patterns and only as whole words. Matching takes time proportional
//! to the number of pattern words times the number of topic words, whatever the pattern (no
//! backtracking, so `#.#.#.x` costs no more than it looks).
//!
//! Names, patterns and the set of subscriptions are pure ([`topic`], [`subscription`]); the
//! [`Bus`] holds the subscriptions a node's code declares ([`crate::Runtime::subscribe`]),
//! with how each turns an event into a request to its subscriber. Delivery itself is the
//! publishing shard's relay (see [`crate::entity::effects`]): at least once, in order per
//! publishing shard and key, applied once by an entity subscriber.
//!
//! ```
//! use troupe_runtime::events::{Pattern, Subscription, Subscriptions, Topic};
//!
//! let created = Topic::parse("order.created")?;
//! assert!(Pattern::parse("order.*")?.matches(&created));
//! assert!(Pattern::parse("#.created")?.matches(&created));
//! assert!(!Pattern::parse("order.*")?.matches(&Topic::parse("order")?));
//!
//! let mut subscriptions = Subscriptions::new();
//! subscriptions.add(Subscription::new(
//!     "inventory-reserves",
//!     Pattern::parse("order.created")?,
//!     "inventory",
//! ))?;
//! subscriptions.add(Subscription::new(
//!     "notify-on-order",
//!     Pattern::parse("order.#")?,
//!     "notifications",
//! ))?;
//! let services: Vec<&str> = subscriptions.matching(&created).map(|s| s.service()).collect();
//! assert_eq!(services, ["inventory", "notifications"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bus;
pub mod subscription;
pub mod topic;

pub use bus::{
    Build, Bus, Deliverer, Delivery, Event, Outcome, Route, Stats, SubscriptionStats, Verdict,
};
pub use subscription::{Subscription, SubscriptionError, Subscriptions};
pub use topic::{MAX_NAME_LEN, Pattern, Topic, TopicError};
