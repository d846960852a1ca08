//! Properties of parsing and matching, against a reference matcher and a reference validator
//! written the obvious (slow) way.

use proptest::prelude::*;

use super::*;

/// The obvious recursive matcher: exponential on many `#`, so only for short inputs.
fn reference_matches(pattern: &[&str], topic: &[&str]) -> bool {
    match pattern.split_first() {
        None => topic.is_empty(),
        Some((&"#", rest)) => (0..=topic.len()).any(|skip| reference_matches(rest, &topic[skip..])),
        Some((&"*", rest)) => !topic.is_empty() && reference_matches(rest, &topic[1..]),
        Some((word, rest)) => topic.first() == Some(word) && reference_matches(rest, &topic[1..]),
    }
}

/// The rules of names, restated: 1 to 255 bytes, non-empty words of ASCII letters, digits,
/// `_` and `-`, and in patterns also words that are exactly `*` or `#`.
fn reference_valid(name: &str, wildcards: bool) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|word| {
            (wildcards && (word == "*" || word == "#"))
                || (!word.is_empty()
                    && word
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        })
}

/// Topic words from a small alphabet, so that patterns often match.
fn topic_words() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..8)
}

/// Pattern tokens from a small alphabet with both wildcards.
fn pattern_tokens() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "*", "#"]), 1..8)
}

/// Strings near the rules: dots, wildcards, a space, a non-ASCII letter, empty words.
fn near_names() -> impl Strategy<Value = String> {
    prop_oneof!["[ab.*#_é -]{0,16}", "[a.]{250,260}", any::<String>(),]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Matching agrees with the reference matcher on every small pattern and topic.
    #[test]
    fn matching_agrees_with_the_reference(tokens in pattern_tokens(), words in topic_words()) {
        let pattern = Pattern::parse(&tokens.join(".")).unwrap();
        let topic = Topic::parse(&words.join(".")).unwrap();
        prop_assert_eq!(
            pattern.matches(&topic),
            reference_matches(&tokens, &words),
            "{} against {}", pattern, topic
        );
    }

    /// Zero to seven words against the automaton directly, including no words at all (which a
    /// topic cannot be): only patterns of `#`s match nothing.
    #[test]
    fn the_automaton_agrees_with_the_reference_from_zero_words(
        tokens in pattern_tokens(),
        words in prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..8),
    ) {
        let pattern = Pattern::parse(&tokens.join(".")).unwrap();
        prop_assert_eq!(
            pattern.matches_words(words.iter().copied()),
            reference_matches(&tokens, &words)
        );
    }

    /// A topic read as a pattern matches itself and only topics equal to it.
    #[test]
    fn a_topic_as_a_pattern_matches_exactly_itself(a in topic_words(), b in topic_words()) {
        let (a, b) = (a.join("."), b.join("."));
        let pattern = Pattern::parse(&a).unwrap();
        prop_assert!(pattern.matches(&Topic::parse(&a).unwrap()));
        prop_assert_eq!(pattern.matches(&Topic::parse(&b).unwrap()), a == b);
    }

    /// Parsing any string never panics, accepts exactly what the rules allow, and keeps the
    /// text of what it accepts.
    #[test]
    fn parsing_accepts_exactly_the_valid_names(name in near_names()) {
        let topic = Topic::parse(&name);
        let pattern = Pattern::parse(&name);
        prop_assert_eq!(topic.is_ok(), reference_valid(&name, false), "topic {:?}", name);
        prop_assert_eq!(pattern.is_ok(), reference_valid(&name, true), "pattern {:?}", name);
        if let Ok(topic) = topic {
            prop_assert_eq!(topic.as_str(), name.as_str());
            // Every topic is a pattern too, matching itself.
            prop_assert!(pattern.as_ref().is_ok_and(|p| p.matches(&topic)));
        }
        if let Ok(pattern) = pattern {
            prop_assert_eq!(pattern.as_str(), name.as_str());
        }
    }

    /// Any string at all: parsing returns, with an answer (no panic, no hang).
    #[test]
    fn parsing_any_string_never_panics(name in any::<String>()) {
        let _ = Topic::parse(&name);
        let _ = Pattern::parse(&name);
    }
}
