//! The order saga's steps: what each does and undoes, and how its answer becomes an outcome.

use std::time::Duration;

use troupe_runtime::Runtime;
use troupe_runtime::entity::{AskError, Context, DomainError, EntityRef};
use troupe_runtime::saga::{Outcome, Saga, SagaState, StepSpec, step_key};

use super::{
    CancelReason, Order, OrderData, OrderError, OrderEvent, OrderItem, OrderSaga, OrderState,
    OrderStatus, Place,
};
use crate::ids::Id;
use crate::inventory::{self, InventoryError, Product};
use crate::payments::{self, PaymentError, Wallet};

/// How long one call of a step may take.
const STEP_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The names of an order's steps, and what each is.
enum StepOf<'a> {
    Reserve(&'a OrderItem),
    Charge,
    Commit(&'a OrderItem),
}

fn step_of(data: &OrderData, step: usize) -> Option<StepOf<'_>> {
    let n = data.items.len();
    match step {
        s if s < n => Some(StepOf::Reserve(&data.items[s])),
        s if s == n => Some(StepOf::Charge),
        s if s <= 2 * n => Some(StepOf::Commit(&data.items[s - n - 1])),
        _ => None,
    }
}

fn reserve_name(item: &OrderItem) -> String {
    format!("reserve:{}", item.product_id)
}

/// A step's answer as its outcome: done; refused for the business reason `refused` names (if
/// it names one for that error); anything else is tried again with the same key.
fn outcome<R, D: DomainError>(
    answer: Result<R, AskError<D>>,
    refused: impl Fn(&D) -> Option<Outcome>,
) -> Outcome {
    match answer {
        Ok(_) => Outcome::Done,
        Err(AskError::Domain(e)) => refused(&e).unwrap_or_else(|| Outcome::Retry(e.to_string())),
        Err(AskError::Call(e)) => Outcome::Retry(e.to_string()),
        Err(AskError::Store(e)) => Outcome::Retry(e.to_string()),
    }
}

/// Product `id`, asked with a step's deadline.
fn product(runtime: &Runtime, id: Id) -> EntityRef<Product> {
    runtime
        .entity::<Product>(id)
        .with_timeout(STEP_CALL_TIMEOUT)
}

/// Wallet `id`, asked with a step's deadline.
fn wallet(runtime: &Runtime, id: Id) -> EntityRef<Wallet> {
    runtime.entity::<Wallet>(id).with_timeout(STEP_CALL_TIMEOUT)
}

/// An outcome that refuses with `reason`.
fn refuse(reason: CancelReason) -> Option<Outcome> {
    Some(Outcome::Refused(reason.as_str().to_string()))
}

impl Saga for OrderSaga {
    const NAME: &'static str = "orders";
    const RUNNER: &'static str = "order-saga";
    type Id = Id;
    type Data = OrderData;
    type Start = Place;
    type Error = OrderError;

    fn begin(_id: &Id, place: Place, _now_ms: u64) -> Result<OrderData, OrderError> {
        let total_cents = place.validate()?;
        let mut items = place.items;
        items.sort_by_key(|i| i.product_id.0);
        Ok(OrderData {
            user_id: place.user_id,
            items,
            total_cents,
            idempotency_key: place.idempotency_key,
            fingerprint: place.fingerprint,
        })
    }

    fn same_start(data: &OrderData, place: &Place) -> bool {
        let mut sorted = place.clone();
        sorted.items.sort_by_key(|i| i.product_id.0);
        sorted.placed(data)
    }

    fn steps(data: &OrderData) -> Vec<StepSpec> {
        let mut steps: Vec<StepSpec> = data
            .items
            .iter()
            .map(|i| StepSpec::compensable(reserve_name(i)))
            .collect();
        steps.push(StepSpec::compensable("charge"));
        steps.extend(
            data.items
                .iter()
                .map(|i| StepSpec::final_step(format!("commit:{}", i.product_id))),
        );
        steps
    }

    fn not_found(id: &Id) -> OrderError {
        OrderError::NotFound(*id)
    }

    fn conflict(id: &Id, why: String) -> OrderError {
        if why.contains("another request") {
            OrderError::KeyReused(*id)
        } else {
            OrderError::Refused { order: *id, why }
        }
    }

    fn milestone(cx: &mut Context<'_, Order>, state: &SagaState<OrderData>) {
        let order = OrderState::of(*cx.id(), state);
        let event = OrderEvent::of(&order, order.status == OrderStatus::Pending);
        cx.publish(event.topic(), &event);
    }

    async fn act(
        &self,
        runtime: &Runtime,
        id: &Id,
        data: &OrderData,
        step: usize,
        key: &str,
    ) -> Outcome {
        match step_of(data, step) {
            Some(StepOf::Reserve(item)) => {
                let product = product(runtime, item.product_id);
                let reserve = inventory::Reserve {
                    key: key.to_string(),
                    quantity: item.quantity,
                };
                outcome(product.ask(reserve).await, |e| match e {
                    InventoryError::OutOfStock { .. }
                    | InventoryError::NotFound(_)
                    | InventoryError::KeyReleased { .. } => refuse(CancelReason::OutOfStock),
                    _ => None,
                })
            }
            Some(StepOf::Charge) => {
                let wallet = wallet(runtime, data.user_id);
                let charge = payments::Charge {
                    key: key.to_string(),
                    amount_cents: data.total_cents,
                };
                outcome(wallet.ask(charge).await, |e| match e {
                    PaymentError::Declined { .. }
                    | PaymentError::NotFound(_)
                    | PaymentError::KeyVoided { .. } => refuse(CancelReason::PaymentDeclined),
                    _ => None,
                })
            }
            Some(StepOf::Commit(item)) => {
                let product = product(runtime, item.product_id);
                let commit = inventory::Commit {
                    key: step_key(id, &reserve_name(item)),
                };
                outcome(product.ask(commit).await, |_| None)
            }
            None => Outcome::Retry(format!("order {id} has no step {step}")),
        }
    }

    async fn compensate(
        &self,
        runtime: &Runtime,
        id: &Id,
        data: &OrderData,
        step: usize,
        key: &str,
    ) -> Outcome {
        match step_of(data, step) {
            Some(StepOf::Reserve(item)) => {
                let product = product(runtime, item.product_id);
                let release = inventory::Release {
                    key: key.to_string(),
                };
                // An unknown product held nothing.
                outcome(product.ask(release).await, |e| {
                    matches!(e, InventoryError::NotFound(_)).then_some(Outcome::Done)
                })
            }
            Some(StepOf::Charge) => {
                let wallet = wallet(runtime, data.user_id);
                let refund = payments::Refund {
                    key: key.to_string(),
                };
                // A wallet never opened was never charged.
                outcome(wallet.ask(refund).await, |e| {
                    matches!(e, PaymentError::NotFound(_)).then_some(Outcome::Done)
                })
            }
            Some(StepOf::Commit(_)) | None => {
                Outcome::Retry(format!("order {id}: step {step} cannot be undone"))
            }
        }
    }
}
