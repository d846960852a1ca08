//! Topic names and the AMQP-style patterns that match them.
//!
//! A [`Topic`] is a dot-separated list of words (`order.created`). A [`Pattern`] is the same
//! with two wildcards allowed as whole words: `*` stands for exactly one word and `#` for zero
//! or more. Both are validated once, when parsed (or deserialized), and are immutable after.
//!
//! Matching simulates the pattern as a small automaton over the topic's words: after each word
//! it keeps the set of pattern positions that can have consumed the words so far. A `#` keeps
//! its position on any word and may also be skipped. The cost is at most
//! `words(pattern) * words(topic)` steps, with no backtracking.
//!
//! ```
//! use troupe_runtime::events::{Pattern, Topic};
//!
//! let pattern = Pattern::parse("a.#.b")?;
//! assert!(pattern.matches(&Topic::parse("a.b")?));
//! assert!(pattern.matches(&Topic::parse("a.x.y.b")?));
//! assert!(!pattern.matches(&Topic::parse("a.b.c")?));
//! assert!(Topic::parse("order.*").is_err(), "wildcards belong in patterns");
//! # Ok::<(), troupe_runtime::events::TopicError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// The longest topic or pattern, in bytes (as AMQP's routing keys).
pub const MAX_NAME_LEN: usize = 255;

/// Why a string is not a valid topic or pattern. Positions are for the person who wrote the
/// name: words count from 1, offsets are byte offsets from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is the empty string.
    #[error("the name is empty: it needs at least one word")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("the name is {len} bytes long, more than the {max} allowed", max = MAX_NAME_LEN)]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A word is empty: the name starts or ends with a dot, or has two in a row.
    #[error("word {word} is empty (a leading, trailing or doubled dot)")]
    EmptyWord {
        /// Which word, counting from 1.
        word: usize,
    },
    /// A character that no word may hold.
    #[error(
        "character {ch:?} at byte {offset} is not allowed: words are ASCII letters, digits, `_` and `-`"
    )]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its byte offset in the name.
        offset: usize,
    },
    /// A wildcard in a topic: a topic names one exact route, only patterns have wildcards.
    #[error("wildcard `{ch}` in word {word}: a topic may not hold wildcards, only a pattern may")]
    WildcardInTopic {
        /// The wildcard (`*` or `#`).
        ch: char,
        /// Which word, counting from 1.
        word: usize,
    },
    /// A wildcard with other characters in the same word (`a*`, `##`): wildcards stand alone.
    #[error("word {word} mixes a wildcard with other characters: `*` and `#` must be whole words")]
    WildcardInWord {
        /// Which word, counting from 1.
        word: usize,
    },
}

/// One word of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    /// Exactly this word.
    Word(Box<str>),
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Many,
}

/// Checks `name` against the rules of topics (`wildcards == false`) or patterns, calling
/// `each` with every word in order once the whole name is known to be valid up to it.
fn validate<'a>(
    name: &'a str,
    wildcards: bool,
    mut each: impl FnMut(&'a str),
) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(TopicError::TooLong { len: name.len() });
    }
    let mut offset = 0;
    for (index, word) in name.split('.').enumerate() {
        let number = index + 1;
        if word.is_empty() {
            return Err(TopicError::EmptyWord { word: number });
        }
        for (at, ch) in word.char_indices() {
            match ch {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => {}
                '*' | '#' if !wildcards => {
                    return Err(TopicError::WildcardInTopic { ch, word: number });
                }
                '*' | '#' if word.len() > 1 => {
                    return Err(TopicError::WildcardInWord { word: number });
                }
                '*' | '#' => {}
                _ => {
                    return Err(TopicError::InvalidChar {
                        ch,
                        offset: offset + at,
                    });
                }
            }
        }
        each(word);
        offset += word.len() + 1;
    }
    Ok(())
}

/// A validated topic: dot-separated words of ASCII letters, digits, `_` and `-`, 1 to
/// [`MAX_NAME_LEN`] bytes in all (`order.created`). Serialized as its string; deserializing
/// validates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Topic(String);

impl Topic {
    /// Parses and validates a topic.
    pub fn parse(name: &str) -> Result<Self, TopicError> {
        validate(name, false, |_| {})?;
        Ok(Self(name.to_owned()))
    }

    /// The topic as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its words, in order (at least one).
    pub fn words(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split('.')
    }
}

impl TryFrom<String> for Topic {
    type Error = TopicError;

    fn try_from(name: String) -> Result<Self, TopicError> {
        validate(&name, false, |_| {})?;
        Ok(Self(name))
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(name: &str) -> Result<Self, TopicError> {
        Self::parse(name)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A validated pattern over topics, as in an AMQP topic exchange: dot-separated words, each a
/// plain word (as in a [`Topic`]), `*` (exactly one word) or `#` (zero or more words). Same
/// length limits as a topic. Serialized as its string; deserializing validates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern {
    /// The pattern as written, for display, serialization and equality.
    text: String,
    /// The parsed words, so that matching does not split and compare wildcards again.
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn parse(pattern: &str) -> Result<Self, TopicError> {
        Self::try_from(pattern.to_owned())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches this pattern. Takes at most
    /// `words(pattern) * words(topic)` steps.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.matches_words(topic.words())
    }

    /// Matches a sequence of words: the automaton behind [`Pattern::matches`], apart so that
    /// tests can drive it with more words than a topic may hold.
    fn matches_words<'w>(&self, words: impl IntoIterator<Item = &'w str>) -> bool {
        let n = self.tokens.len();
        // reached[i]: the first i tokens can have consumed exactly the words read so far.
        let mut reached = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        reached[0] = true;
        self.skip_hashes(&mut reached);
        for word in words {
            next.fill(false);
            let mut alive = false;
            for (i, token) in self.tokens.iter().enumerate() {
                if !reached[i] {
                    continue;
                }
                let to = match token {
                    Token::Many => i,
                    Token::One => i + 1,
                    Token::Word(w) if **w == *word => i + 1,
                    Token::Word(_) => continue,
                };
                next[to] = true;
                alive = true;
            }
            if !alive {
                return false;
            }
            self.skip_hashes(&mut next);
            std::mem::swap(&mut reached, &mut next);
        }
        reached[n]
    }

    /// Adds the positions reachable by letting `#`s match no word. One forward pass is enough:
    /// skipping only ever moves forward, and a run of `#`s is followed in order.
    fn skip_hashes(&self, reached: &mut [bool]) {
        for (i, token) in self.tokens.iter().enumerate() {
            if reached[i] && *token == Token::Many {
                reached[i + 1] = true;
            }
        }
    }
}

impl TryFrom<String> for Pattern {
    type Error = TopicError;

    fn try_from(text: String) -> Result<Self, TopicError> {
        let mut tokens = Vec::new();
        validate(&text, true, |word| {
            tokens.push(match word {
                "*" => Token::One,
                "#" => Token::Many,
                word => Token::Word(word.into()),
            });
        })?;
        Ok(Self { text, tokens })
    }
}

impl FromStr for Pattern {
    type Err = TopicError;

    fn from_str(pattern: &str) -> Result<Self, TopicError> {
        Self::parse(pattern)
    }
}

impl AsRef<str> for Pattern {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
