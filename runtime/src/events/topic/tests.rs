//! Examples of topics and patterns: the wildcard edge cases, every parse error, the limits,
//! serde and the cost of matching many `#`.

use bincode::config;

use super::*;

fn topic(name: &str) -> Topic {
    Topic::parse(name).unwrap()
}

fn pattern(text: &str) -> Pattern {
    Pattern::parse(text).unwrap()
}

/// Asserts which of `topics` match `text` and which do not.
fn check(text: &str, matching: &[&str], not_matching: &[&str]) {
    let p = pattern(text);
    for t in matching {
        assert!(p.matches(&topic(t)), "{text} should match {t}");
    }
    for t in not_matching {
        assert!(!p.matches(&topic(t)), "{text} should not match {t}");
    }
}

#[test]
fn hash_alone_matches_every_topic() {
    check("#", &["a", "order", "order.created", "a.b.c.d.e.f"], &[]);
}

#[test]
fn trailing_hash_matches_zero_or_more_words() {
    check(
        "order.#",
        &["order", "order.created", "order.a.b"],
        &["orders", "user.created", "x.order", "created"],
    );
}

#[test]
fn star_matches_exactly_one_word() {
    check(
        "order.*",
        &["order.created", "order.x"],
        &["order", "order.a.b", "user.created"],
    );
    check("*", &["a", "order"], &["a.b"]);
}

#[test]
fn leading_hash_matches_zero_or_more_words_before() {
    check(
        "#.created",
        &["created", "order.created", "a.b.created"],
        &["created.x", "order", "order.creat"],
    );
}

#[test]
fn star_then_hash_needs_at_least_one_word() {
    // Every topic has at least one word, so both match everything; the difference from `#`
    // shows once a word must follow.
    check("*.#", &["a", "a.b", "a.b.c"], &[]);
    check("#.*", &["a", "a.b", "a.b.c"], &[]);
    check("*.#.x", &["a.x", "a.b.x"], &["x", "a", "a.x.b"]);
    check("#.x", &["x", "a.x"], &["a"]);
}

#[test]
fn hash_hash_equals_hash() {
    let topics = ["a", "a.b", "a.b.c", "x.y.z.w"];
    for t in topics {
        assert_eq!(
            pattern("#.#").matches(&topic(t)),
            pattern("#").matches(&topic(t))
        );
    }
    check("#.#", &topics, &[]);
    check(
        "a.#.#.b",
        &["a.b", "a.x.b", "a.x.y.z.b"],
        &["a", "b", "a.b.c"],
    );
}

#[test]
fn hash_between_words_matches_zero_or_more() {
    check(
        "a.#.b",
        &["a.b", "a.x.b", "a.x.y.b", "a.b.b"],
        &["a", "b", "a.b.c", "x.a.b"],
    );
}

#[test]
fn stars_count_words_exactly() {
    check("*.*", &["a.b"], &["a", "a.b.c"]);
    check("*.*.#", &["a.b", "a.b.c.d"], &["a"]);
    check("a.*.#.b", &["a.x.b", "a.x.y.b"], &["a.b", "a.x"]);
    check("#.*.#", &["a", "a.b.c"], &[]);
}

#[test]
fn a_plain_pattern_matches_only_its_topic() {
    check(
        "order.created",
        &["order.created"],
        &[
            "order",
            "order.created.x",
            "order.createdx",
            "Order.created",
        ],
    );
}

#[test]
fn valid_names_keep_their_text() {
    for name in ["a", "order.created", "A-b_9.x", "0", "-._"] {
        let t = topic(name);
        assert_eq!(t.as_str(), name);
        assert_eq!(t.to_string(), name);
        assert_eq!(name.parse::<Topic>().unwrap(), t);
        assert_eq!(pattern(name).as_str(), name);
    }
    assert_eq!(topic("a.b.c").words().collect::<Vec<_>>(), ["a", "b", "c"]);
    for text in ["#", "*", "a.*.#", "#.x.*"] {
        assert_eq!(text.parse::<Pattern>().unwrap().to_string(), text);
    }
}

#[test]
fn each_malformed_name_says_what_is_wrong() {
    let cases = [
        ("", TopicError::Empty),
        (".", TopicError::EmptyWord { word: 1 }),
        (".a", TopicError::EmptyWord { word: 1 }),
        ("a.", TopicError::EmptyWord { word: 2 }),
        ("a..b", TopicError::EmptyWord { word: 2 }),
        ("a b", TopicError::InvalidChar { ch: ' ', offset: 1 }),
        (
            "ab.c\td",
            TopicError::InvalidChar {
                ch: '\t',
                offset: 4,
            },
        ),
        (
            "ab.cé",
            TopicError::InvalidChar {
                ch: 'é', offset: 4
            },
        ),
        ("a/b", TopicError::InvalidChar { ch: '/', offset: 1 }),
    ];
    for (name, error) in cases {
        assert_eq!(Topic::parse(name), Err(error.clone()), "topic {name:?}");
        assert_eq!(Pattern::parse(name), Err(error), "pattern {name:?}");
    }
}

#[test]
fn wildcards_are_refused_in_topics_and_inside_words() {
    assert_eq!(
        Topic::parse("order.*"),
        Err(TopicError::WildcardInTopic { ch: '*', word: 2 })
    );
    assert_eq!(
        Topic::parse("#"),
        Err(TopicError::WildcardInTopic { ch: '#', word: 1 })
    );
    assert_eq!(
        Topic::parse("a.b#"),
        Err(TopicError::WildcardInTopic { ch: '#', word: 2 })
    );
    for (text, word) in [("a*", 1), ("x.#a", 2), ("**", 1), ("a.##", 2), ("*#", 1)] {
        assert_eq!(
            Pattern::parse(text),
            Err(TopicError::WildcardInWord { word }),
            "{text}"
        );
    }
}

#[test]
fn names_of_up_to_255_bytes_are_accepted() {
    let longest = "a".repeat(MAX_NAME_LEN);
    assert!(Topic::parse(&longest).is_ok());
    assert!(Pattern::parse(&longest).is_ok());
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    let error = TopicError::TooLong {
        len: MAX_NAME_LEN + 1,
    };
    assert_eq!(Topic::parse(&too_long), Err(error.clone()));
    assert_eq!(Pattern::parse(&too_long), Err(error));
    // The limit counts bytes, not characters, and comes before any other complaint.
    assert_eq!(
        Topic::parse(&"é".repeat(128)),
        Err(TopicError::TooLong { len: 256 })
    );
}

#[test]
fn errors_read_as_sentences() {
    let message = Topic::parse("order.*").unwrap_err().to_string();
    assert_eq!(
        message,
        "wildcard `*` in word 2: a topic may not hold wildcards, only a pattern may"
    );
    let message = Topic::parse(&"a".repeat(300)).unwrap_err().to_string();
    assert_eq!(
        message,
        "the name is 300 bytes long, more than the 255 allowed"
    );
}

#[test]
fn serde_writes_the_string_and_validates_on_the_way_back() {
    let cfg = config::standard();
    let t = topic("order.created");
    let bytes = bincode::serde::encode_to_vec(&t, cfg).unwrap();
    assert_eq!(
        bytes,
        bincode::serde::encode_to_vec("order.created", cfg).unwrap()
    );
    let (back, _): (Topic, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, t);

    let p = pattern("order.#");
    let bytes = bincode::serde::encode_to_vec(&p, cfg).unwrap();
    assert_eq!(
        bytes,
        bincode::serde::encode_to_vec("order.#", cfg).unwrap()
    );
    let (back, _): (Pattern, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, p);
    assert!(back.matches(&topic("order.a.b")));

    for bad in ["order.*", "", "a..b", "a b"] {
        let bytes = bincode::serde::encode_to_vec(bad, cfg).unwrap();
        let topic: Result<(Topic, usize), _> = bincode::serde::decode_from_slice(&bytes, cfg);
        assert!(topic.is_err(), "topic {bad:?} decoded");
    }
    for bad in ["a*", "", "a..b", "#.é"] {
        let bytes = bincode::serde::encode_to_vec(bad, cfg).unwrap();
        let pattern: Result<(Pattern, usize), _> = bincode::serde::decode_from_slice(&bytes, cfg);
        assert!(pattern.is_err(), "pattern {bad:?} decoded");
    }
}

/// `#.#.…#.x` against words none of which is `x`: a backtracking matcher tries every way of
/// splitting the words among the `#`s (exponentially many) before it gives up.
fn many_hashes(num_hashes: usize) -> Pattern {
    let text = format!("{}x", "#.".repeat(num_hashes));
    pattern(&text)
}

#[test]
fn many_hashes_against_the_longest_topic_match_at_once() {
    // 127 `#` and an `x` make the longest pattern, 128 words the longest topic.
    let p = many_hashes(127);
    assert_eq!(p.as_str().len(), MAX_NAME_LEN);
    let words = vec!["a"; 128];
    let without_x = topic(&words.join("."));
    assert_eq!(without_x.as_str().len(), MAX_NAME_LEN);
    assert!(!p.matches(&without_x));
    let mut words = words;
    words[127] = "x";
    assert!(p.matches(&topic(&words.join("."))));
}

#[test]
fn many_hashes_against_200_words_match_at_once() {
    // 200 words are more than a topic may hold, so drive the automaton directly.
    let p = many_hashes(60);
    let mut words = vec!["a"; 200];
    assert!(!p.matches_words(words.iter().copied()));
    words[199] = "x";
    assert!(p.matches_words(words.iter().copied()));
    words[199] = "a";
    words[100] = "x";
    assert!(!p.matches_words(words.iter().copied()), "x must be last");
    let p = pattern("#.a.#.a.#.a.#.x.#");
    assert!(p.matches_words(words.iter().copied()));
}
