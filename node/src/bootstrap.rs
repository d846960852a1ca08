//! The business services of `troupe-actors` on this node, and the administrator's account.
//!
//! The services are hosted when the configuration has their sections (`[services.users]`,
//! `[services.user-emails]`, `[services.wallets]`; with them `[services.products]` and
//! `[services.product-skus]`, and `[services.orders]` with `[services.order-views]` and
//! `[services.notifications]`), with their subscriptions declared first.
//! The administrator's account is created at first start: its email from `TROUPE_ADMIN_EMAIL`
//! (default `admin@troupe.local`), its password from `TROUPE_ADMIN_PASSWORD`, else generated
//! once into `<data_dir>/secrets/admin-password` (owner-only). Every node tries until the
//! account exists (the cluster may still be forming); whichever node registers it first wins,
//! and the others find the email taken, which is what they wanted.

use tokio::time::Duration;
use troupe_actors::inventory::{Product, Skus};
use troupe_actors::notifications::{self, Notifications};
use troupe_actors::order_views::{self, OrderViews};
use troupe_actors::orders::{Order, OrderSaga};
use troupe_actors::payments::{self, Open, Wallet};
use troupe_actors::users::{self, Emails, Role, User};
use troupe_runtime::Runtime;
use troupe_runtime::entity::{Entity, EntityService};

use crate::auth::password;
use crate::config::{ConfigError, NodeConfig};
use crate::edge::AppState;
use crate::edge::error::ApiError;
use crate::secrets::{SecretSource, load_or_generate};

/// The variable that names the administrator's email.
pub const ADMIN_EMAIL_ENV: &str = "TROUPE_ADMIN_EMAIL";
/// The variable that carries the administrator's password.
pub const ADMIN_PASSWORD_ENV: &str = "TROUPE_ADMIN_PASSWORD";
/// The administrator's email when none is given.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@troupe.local";

/// What a new wallet holds, as configured (`[payments] opening_balance_cents`): set once at
/// start, read by the subscription that opens wallets (a plain `fn`, which cannot capture it)
/// and by the edge when it opens a wallet whose event has not arrived yet.
static OPENING_BALANCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The opening balance of a new wallet, in cents.
pub fn opening_balance_cents() -> u64 {
    OPENING_BALANCE
        .get()
        .copied()
        .unwrap_or(payments::OPENING_BALANCE_DEFAULT)
}

/// Opens the wallet of the user an event created, with the configured balance.
fn open_wallet(event: &troupe_runtime::events::Event) -> Option<(troupe_actors::ids::Id, Open)> {
    payments::open_command(event, opening_balance_cents())
}

/// Hosts the users, email and wallet services if they are configured; returns whether. New
/// wallets open with `opening_balance_cents`.
pub async fn host_services(runtime: &Runtime, opening_balance_cents: u64) -> anyhow::Result<bool> {
    // One process is one node: the first value set stays (tests that run nodes in-process
    // share the default).
    let _ = OPENING_BALANCE.set(opening_balance_cents);
    let configured = |name: &str| !runtime.shard_map(name).is_empty();
    if !(configured(User::NAME) && configured(Emails::NAME) && configured(Wallet::NAME)) {
        return Ok(false);
    }
    let orders =
        configured(Order::NAME) && configured(OrderViews::NAME) && configured(Notifications::NAME);
    // Subscribed before anything that publishes is hosted.
    runtime.subscribe::<Wallet, Open>(payments::SUBSCRIPTION, users::USER_CREATED, open_wallet)?;
    if orders {
        runtime.subscribe::<OrderViews, order_views::Apply>(
            order_views::SUBSCRIPTION,
            order_views::PATTERN,
            order_views::from_order_event,
        )?;
        runtime.subscribe::<Notifications, notifications::Apply>(
            notifications::SUBSCRIPTION,
            notifications::PATTERN,
            notifications::from_order_event,
        )?;
    }
    runtime.host(EntityService::<Wallet>::new()).await?;
    runtime.host(EntityService::<Emails>::new()).await?;
    runtime.host(EntityService::<User>::new()).await?;
    if configured(Product::NAME) && configured(Skus::NAME) {
        runtime.host(EntityService::<Skus>::new()).await?;
        runtime.host(EntityService::<Product>::new()).await?;
    }
    if orders {
        runtime.host(EntityService::<OrderViews>::new()).await?;
        runtime.host(EntityService::<Notifications>::new()).await?;
        runtime.host_saga(OrderSaga).await?;
    }
    Ok(true)
}

/// The administrator's email and password, and where the password came from.
pub fn admin_credentials(
    config: &NodeConfig,
) -> Result<(String, String, SecretSource), ConfigError> {
    let email = std::env::var(ADMIN_EMAIL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_EMAIL.into());
    let email = users::normalize_email(&email)
        .map_err(|e| ConfigError::new(format!("{ADMIN_EMAIL_ENV}: {e}")))?;
    if let Ok(password) = std::env::var(ADMIN_PASSWORD_ENV) {
        if !(8..=128).contains(&password.chars().count()) {
            return Err(ConfigError::new(format!(
                "{ADMIN_PASSWORD_ENV} must be 8 to 128 characters"
            )));
        }
        return Ok((email, password, SecretSource::Env(ADMIN_PASSWORD_ENV)));
    }
    let path = config.data_dir.join("secrets").join("admin-password");
    let (password, generated) = load_or_generate(&path)
        .map_err(|e| ConfigError::new(format!("admin password at {}: {e}", path.display())))?;
    Ok((email, password, SecretSource::File { path, generated }))
}

/// Creates the administrator's account unless it exists, trying again until the cluster
/// answers.
pub async fn ensure_admin(state: AppState, email: String, password: String) {
    let mut delay = Duration::from_millis(200);
    let hash = match tokio::task::spawn_blocking(move || password::hash(&password)).await {
        Ok(Ok(hash)) => hash,
        other => {
            tracing::error!(?other, "cannot hash the administrator's password");
            return;
        }
    };
    loop {
        let created = crate::edge::api::users::create(
            &state,
            email.clone(),
            "Administrator".into(),
            hash.clone(),
            Role::Admin,
        )
        .await;
        match created {
            Ok(profile) => {
                tracing::info!(user = %profile.id, %email, "administrator account created");
                return;
            }
            Err(ApiError::Conflict(_)) => {
                tracing::debug!(%email, "administrator account exists");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "administrator account not created yet; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
