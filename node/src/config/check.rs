//! The file being checked: every error names it, the line and the key, and relative paths
//! are taken from its directory.
//!
//! A value's [`Spanned`] position says where it was written. A value with an empty span was not
//! written in the file: it came from a command-line flag, a `TROUPE_*` variable or a default.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{ConfigError, ConfigSource};

/// A value that was not written in the file (an override or a default).
pub(super) fn unwritten<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Replaces `slot` with `value` from an override, if there is one.
pub(super) fn override_with<T>(slot: &mut Spanned<T>, value: Option<T>) {
    if let Some(value) = value {
        *slot = unwritten(value);
    }
}

/// Reports problems with positions in the source text, and resolves paths.
pub(super) struct Checker<'a> {
    source: &'a ConfigSource,
    text: &'a str,
}

impl<'a> Checker<'a> {
    /// A checker of `text`, read from `source`.
    pub(super) fn new(source: &'a ConfigSource, text: &'a str) -> Self {
        Self { source, text }
    }

    /// An error about the file as a whole, with no line.
    pub(super) fn whole(&self, problem: impl fmt::Display) -> ConfigError {
        ConfigError::new(format!("{}: {problem}", self.source))
    }

    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    /// An error at `key`; a value with an empty span came from an override.
    pub(super) fn err<T>(
        &self,
        key: &str,
        at: &Range<usize>,
        problem: impl fmt::Display,
    ) -> Result<T, ConfigError> {
        if at.is_empty() {
            Err(self.whole(format_args!(
                "{key} (from a command-line flag or TROUPE_* variable): {problem}"
            )))
        } else {
            Err(ConfigError::new(format!(
                "{}:{}: {key}: {problem}",
                self.source,
                self.line(at)
            )))
        }
    }

    /// The value of `v`, which must not be 0.
    pub(super) fn positive(&self, key: &str, v: &Spanned<u64>) -> Result<u64, ConfigError> {
        match *v.get_ref() {
            0 => self.err(key, &v.span(), "must be greater than 0"),
            n => Ok(n),
        }
    }

    /// `v` as an IP:port address with a port other than 0.
    pub(super) fn addr(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(a),
            Ok(_) => self.err(
                key,
                &v.span(),
                "port 0 is not allowed: peers must know the port",
            ),
            Err(_) => self.err(
                key,
                &v.span(),
                format!("{:?} is not an IP:port address", v.get_ref()),
            ),
        }
    }

    /// `path` as written in the file: an absolute path as is, a relative one from the file's
    /// directory (from the working directory for the built-in default).
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.source {
            ConfigSource::File(file) => file.parent().unwrap_or(Path::new("")).join(path),
            ConfigSource::Embedded => path.to_path_buf(),
        }
    }
}
