//! Subscriptions: who wants which events.
//!
//! A [`Subscription`] has a name unique across the cluster (it names the consumer, as an AMQP
//! queue bound to a topic exchange does: delivery and acknowledgement are tracked per
//! subscription), a [`Pattern`] over topics and the service whose members receive the events.
//! A service may hold several subscriptions, and several services may subscribe to the same
//! topic: each matching subscription gets its own copy of an event.
//!
//! [`Subscriptions`] is the set of them, in the order they were declared.
//!
//! ```
//! use troupe_runtime::events::{Pattern, Subscription, SubscriptionError, Subscriptions, Topic};
//!
//! let mut subscriptions = Subscriptions::new();
//! let by_inventory = Subscription::new("reserve-stock", Pattern::parse("order.created")?, "inventory");
//! subscriptions.add(by_inventory.clone())?;
//! assert!(matches!(
//!     subscriptions.add(by_inventory),
//!     Err(SubscriptionError::Duplicate { .. })
//! ));
//! let topic = Topic::parse("order.created")?;
//! assert_eq!(subscriptions.matching(&topic).count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};

use super::topic::{Pattern, Topic};

/// One subscription: events whose topic matches `pattern` go to `service`, tracked under
/// `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Unique among subscriptions: acknowledgements, retries and dead letters are kept per
    /// name, so two subscriptions sharing one would steal each other's events.
    name: String,
    /// Which topics.
    pattern: Pattern,
    /// The subscribing service.
    service: String,
}

impl Subscription {
    /// A subscription named `name` of `service` to the topics matching `pattern`.
    pub fn new(name: impl Into<String>, pattern: Pattern, service: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            pattern,
            service: service.into(),
        }
    }

    /// Its name, unique among subscriptions.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pattern of topics it receives.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The service that receives the events.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether an event on `topic` goes to this subscription.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.pattern.matches(topic)
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// Another subscription already has this name.
    #[error("a subscription named {name:?} already exists")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The name is empty.
    #[error("a subscription needs a non-empty name")]
    EmptyName,
    /// The service name is empty.
    #[error("subscription {name:?} names no service")]
    EmptyService {
        /// The subscription's name.
        name: String,
    },
}

/// A set of subscriptions with unique names, kept in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Subscriptions {
    /// In declaration order, so that listings and delivery fan-out are stable. Subscriptions
    /// are declared in code and few, so a scan is cheaper than an index.
    all: Vec<Subscription>,
}

impl Subscriptions {
    /// No subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `subscription`, unless its name or service is empty or its name is taken (then
    /// the set is unchanged).
    pub fn add(&mut self, subscription: Subscription) -> Result<(), SubscriptionError> {
        if subscription.name.is_empty() {
            return Err(SubscriptionError::EmptyName);
        }
        if subscription.service.is_empty() {
            return Err(SubscriptionError::EmptyService {
                name: subscription.name,
            });
        }
        if self.get(&subscription.name).is_some() {
            return Err(SubscriptionError::Duplicate {
                name: subscription.name,
            });
        }
        self.all.push(subscription);
        Ok(())
    }

    /// The subscription named `name`.
    pub fn get(&self, name: &str) -> Option<&Subscription> {
        self.all.iter().find(|s| s.name == name)
    }

    /// The subscriptions an event on `topic` goes to, in declaration order.
    pub fn matching<'a>(&'a self, topic: &'a Topic) -> impl Iterator<Item = &'a Subscription> {
        self.all.iter().filter(move |s| s.matches(topic))
    }

    /// Every subscription, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.all.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, pattern: &str, service: &str) -> Subscription {
        Subscription::new(name, Pattern::parse(pattern).unwrap(), service)
    }

    fn topic(name: &str) -> Topic {
        Topic::parse(name).unwrap()
    }

    fn example() -> Subscriptions {
        let mut subs = Subscriptions::new();
        subs.add(sub("reserve", "order.created", "inventory"))
            .unwrap();
        subs.add(sub("notify", "order.#", "notifications")).unwrap();
        subs.add(sub("audit", "#", "audit")).unwrap();
        subs.add(sub("users", "user.*", "notifications")).unwrap();
        subs
    }

    fn names<'a>(subs: impl Iterator<Item = &'a Subscription>) -> Vec<&'a str> {
        subs.map(Subscription::name).collect()
    }

    #[test]
    fn matching_yields_every_matching_subscription_in_declaration_order() {
        let subs = example();
        assert_eq!(
            names(subs.matching(&topic("order.created"))),
            ["reserve", "notify", "audit"]
        );
        assert_eq!(names(subs.matching(&topic("order"))), ["notify", "audit"]);
        assert_eq!(
            names(subs.matching(&topic("user.created"))),
            ["audit", "users"]
        );
        assert_eq!(names(subs.matching(&topic("user.a.b"))), ["audit"]);
        assert!(Subscriptions::new().matching(&topic("a")).next().is_none());
    }

    #[test]
    fn a_duplicate_name_is_refused_and_the_first_kept() {
        let mut subs = example();
        let error = subs.add(sub("notify", "other.*", "elsewhere")).unwrap_err();
        assert_eq!(
            error,
            SubscriptionError::Duplicate {
                name: "notify".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "a subscription named \"notify\" already exists"
        );
        assert_eq!(subs.len(), 4);
        let kept = subs.get("notify").unwrap();
        assert_eq!(kept.pattern().as_str(), "order.#");
        assert_eq!(kept.service(), "notifications");
    }

    #[test]
    fn empty_names_and_services_are_refused() {
        let mut subs = Subscriptions::new();
        assert_eq!(
            subs.add(sub("", "a", "svc")),
            Err(SubscriptionError::EmptyName)
        );
        assert_eq!(
            subs.add(sub("s", "a", "")),
            Err(SubscriptionError::EmptyService { name: "s".into() })
        );
        assert!(subs.is_empty());
    }

    #[test]
    fn the_same_pattern_may_serve_several_subscriptions() {
        let mut subs = Subscriptions::new();
        subs.add(sub("a", "order.*", "inventory")).unwrap();
        subs.add(sub("b", "order.*", "inventory")).unwrap();
        assert_eq!(names(subs.matching(&topic("order.paid"))), ["a", "b"]);
        assert_eq!(names(subs.iter()), ["a", "b"]);
        assert!(subs.get("c").is_none());
    }
}
