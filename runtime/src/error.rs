//! The runtime's one error type. Each error carries an [`ErrorKind`] so that the edge can pick a
//! status code without knowing which module failed.

/// What kind of failure an error is, for callers that must react (retry, report, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The settings handed to the runtime are not usable.
    InvalidConfig,
    /// Something the runtime needs could not be started (a port taken, an actor refused to spawn).
    Startup,
    /// The target is not reachable now and nothing was done; the caller may retry later.
    Unavailable,
    /// The request reached its target, which may have applied it, but no answer came: the
    /// caller cannot know, and may repeat only an idempotent request.
    OutcomeUnknown,
    /// A bug or a broken invariant inside the runtime.
    Internal,
}

/// An error from the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The cluster settings are not valid; the message says which one and why.
    #[error("invalid cluster settings: {0}")]
    InvalidConfig(String),
    /// The cluster layer could not start.
    #[error("cluster failed to start: {0}")]
    Startup(String),
    /// An actor of the runtime could not be reached.
    #[error("runtime actor unavailable: {0}")]
    Unavailable(String),
}

impl RuntimeError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Self::Startup(_) => ErrorKind::Startup,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}
