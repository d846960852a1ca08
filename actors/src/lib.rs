//! The business services of Troupe (users, inventory, payments, orders, notifications and the
//! order saga), built on `troupe-runtime` and knowing nothing of HTTP.
//!
//! Nothing lives here yet: the services arrive once the runtime has service groups and
//! persistent sharded actors to build them on.
