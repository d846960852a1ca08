#![allow(clippy::unwrap_used)] // a panic is how a test fails

use serde::{Deserialize, Serialize};

use crate::entity::testing::Harness;
use crate::entity::{AskError, Command, Commands, Context, DomainError, DomainKind, Entity};

/// A notebook per name: its state counts the notes, each note an entry.
struct Notebook;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("refused")]
struct Refused;

impl DomainError for Refused {
    fn kind(&self) -> DomainKind {
        DomainKind::Conflict
    }
}

impl Entity for Notebook {
    const NAME: &'static str = "notebooks";
    type Id = String;
    type State = u64;
    type Error = Refused;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Write>()
            .add::<Erase>()
            .add::<Read>()
            .add::<List>()
            .add::<Burn>()
            .add::<ReadWide>();
    }
}

/// Writes each (name, text), then reads them back in the same command; refuses (writing
/// nothing) if `refuse`.
#[derive(Debug, Serialize, Deserialize)]
struct Write {
    notes: Vec<(String, String)>,
    refuse: bool,
}

impl Command<Notebook> for Write {
    const NAME: &'static str = "write";
    type Reply = Vec<Option<String>>;
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<Self::Reply, Refused> {
        let count = cx.state().copied().unwrap_or(0);
        cx.set(count + self.notes.len() as u64);
        for (name, text) in &self.notes {
            cx.put_entry(name.as_bytes(), text);
        }
        let read = self
            .notes
            .iter()
            .map(|(name, _)| cx.entry::<String>(name.as_bytes()))
            .collect();
        if self.refuse {
            return Err(Refused);
        }
        Ok(read)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Erase(String);

impl Command<Notebook> for Erase {
    const NAME: &'static str = "erase";
    type Reply = Option<String>;
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<Option<String>, Refused> {
        cx.delete_entry(self.0.as_bytes());
        Ok(cx.entry(self.0.as_bytes()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Read(String);

impl Command<Notebook> for Read {
    const NAME: &'static str = "read";
    const IDEMPOTENT: bool = true;
    type Reply = Option<String>;
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<Option<String>, Refused> {
        Ok(cx.entry(self.0.as_bytes()))
    }
}

/// Reads an entry as a type wider than what was written: the decode fails.
#[derive(Debug, Serialize, Deserialize)]
struct ReadWide(String);

impl Command<Notebook> for ReadWide {
    const NAME: &'static str = "read-wide";
    type Reply = bool;
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<bool, Refused> {
        let found = cx.entry::<(String, u64, u64)>(self.0.as_bytes()).is_some();
        // Acting on the failed read as if the entry were absent: this must not stand.
        cx.set(1_000);
        cx.put_entry(b"written-after-a-failed-read", &"x".to_string());
        Ok(found)
    }
}

/// Lists names under `prefix` after (or, `rev`, before) `from`, with this command's own
/// writes (`put`, `erase`) applied first.
#[derive(Debug, Serialize, Deserialize)]
struct List {
    prefix: String,
    from: Option<String>,
    limit: usize,
    rev: bool,
    put: Vec<String>,
    erase: Vec<String>,
}

impl Command<Notebook> for List {
    const NAME: &'static str = "list";
    type Reply = Vec<String>;
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<Vec<String>, Refused> {
        for name in &self.put {
            cx.put_entry(name.as_bytes(), name);
        }
        for name in &self.erase {
            cx.delete_entry(name.as_bytes());
        }
        let from = self.from.as_ref().map(|f| f.as_bytes());
        let found: Vec<(Vec<u8>, String)> = if self.rev {
            cx.entries_rev(self.prefix.as_bytes(), from, self.limit)
        } else {
            cx.entries(self.prefix.as_bytes(), from, self.limit)
        };
        Ok(found
            .into_iter()
            .map(|(name, text)| {
                assert_eq!(name, text.as_bytes(), "an entry comes with its own name");
                text
            })
            .collect())
    }
}

/// Removes the notebook.
#[derive(Debug, Serialize, Deserialize)]
struct Burn;

impl Command<Notebook> for Burn {
    const NAME: &'static str = "burn";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Notebook>) -> Result<(), Refused> {
        cx.remove();
        Ok(())
    }
}

fn notes(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (n.to_string(), n.to_string()))
        .collect()
}

fn write(names: &[&str]) -> Write {
    Write {
        notes: notes(names),
        refuse: false,
    }
}

fn list(prefix: &str, from: Option<&str>, limit: usize, rev: bool) -> List {
    List {
        prefix: prefix.into(),
        from: from.map(str::to_string),
        limit,
        rev,
        put: Vec::new(),
        erase: Vec::new(),
    }
}

fn id(s: &str) -> String {
    s.to_string()
}

#[tokio::test]
async fn entries_are_written_with_the_command_and_survive_a_crash() {
    let mut books = Harness::<Notebook>::new().await.unwrap();
    let seen = books.ask(id("a"), write(&["x", "y"])).await.unwrap();
    assert_eq!(
        seen,
        vec![Some("x".into()), Some("y".into())],
        "own writes are read"
    );
    // A refused command writes neither its state nor its entries.
    let refused = Write {
        notes: notes(&["z"]),
        refuse: true,
    };
    assert_eq!(
        books.ask(id("a"), refused).await,
        Err(AskError::Domain(Refused))
    );
    assert_eq!(books.ask(id("a"), Read("z".into())).await.unwrap(), None);
    books.crash().await.unwrap();
    assert_eq!(
        books.ask(id("a"), Read("x".into())).await.unwrap(),
        Some("x".into())
    );
    assert_eq!(books.ask(id("a"), Erase("x".into())).await.unwrap(), None);
    books.crash().await.unwrap();
    assert_eq!(books.ask(id("a"), Read("x".into())).await.unwrap(), None);
    assert_eq!(
        books.ask(id("a"), Read("y".into())).await.unwrap(),
        Some("y".into())
    );
}

#[tokio::test]
async fn entities_whose_ids_share_a_prefix_do_not_see_each_others_entries() {
    let books = Harness::<Notebook>::new().await.unwrap();
    books.ask(id("a"), write(&["bc"])).await.unwrap();
    books.ask(id("ab"), write(&["c"])).await.unwrap();
    assert_eq!(
        books.ask(id("a"), list("", None, 10, false)).await.unwrap(),
        vec!["bc"]
    );
    assert_eq!(
        books
            .ask(id("ab"), list("", None, 10, false))
            .await
            .unwrap(),
        vec!["c"]
    );
    assert_eq!(books.ask(id("a"), Read("c".into())).await.unwrap(), None);
    // Removing one entity removes its entries only.
    books.ask(id("a"), Burn).await.unwrap();
    assert!(
        books
            .ask(id("a"), list("", None, 10, false))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        books.ask(id("ab"), Read("c".into())).await.unwrap(),
        Some("c".into())
    );
}

#[tokio::test]
async fn ranges_follow_name_order_both_ways_and_page() {
    let books = Harness::<Notebook>::new().await.unwrap();
    books
        .ask(id("n"), write(&["k1", "k2", "k3", "k4", "k5", "other"]))
        .await
        .unwrap();
    let ask = |l: List| books.ask(id("n"), l);
    assert_eq!(
        ask(list("k", None, 2, false)).await.unwrap(),
        vec!["k1", "k2"]
    );
    assert_eq!(
        ask(list("k", Some("k2"), 2, false)).await.unwrap(),
        vec!["k3", "k4"]
    );
    assert_eq!(
        ask(list("k", Some("k4"), 9, false)).await.unwrap(),
        vec!["k5"]
    );
    assert_eq!(
        ask(list("k", None, 2, true)).await.unwrap(),
        vec!["k5", "k4"]
    );
    assert_eq!(
        ask(list("k", Some("k4"), 9, true)).await.unwrap(),
        vec!["k3", "k2", "k1"]
    );
    assert_eq!(ask(list("o", None, 9, true)).await.unwrap(), vec!["other"]);
    assert!(
        ask(list("k", Some("k1"), 9, true))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn ranges_include_the_commands_own_writes_and_deletions() {
    let books = Harness::<Notebook>::new().await.unwrap();
    books
        .ask(id("n"), write(&["k1", "k3", "k5", "k7"]))
        .await
        .unwrap();
    for rev in [false, true] {
        // Deletions of stored names, and a new name beyond the stored page, within one
        // command: the page still holds `limit` names, in order, none skipped.
        let mut l = list("k", None, 3, rev);
        l.erase = vec!["k1".into(), "k7".into()];
        l.put = vec!["k4".into(), "k9".into(), "k0".into()];
        let mut expected = vec!["k0", "k3", "k4", "k5", "k9"];
        if rev {
            expected.reverse();
        }
        expected.truncate(3);
        assert_eq!(
            books
                .ask(
                    id(if rev { "r" } else { "f" }),
                    write(&["k1", "k3", "k5", "k7"])
                )
                .await
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            books.ask(id(if rev { "r" } else { "f" }), l).await.unwrap(),
            expected,
            "rev {rev}"
        );
    }
}

#[tokio::test]
async fn a_failed_read_fails_the_command_and_writes_nothing() {
    let books = Harness::<Notebook>::new().await.unwrap();
    books.ask(id("n"), write(&["x"])).await.unwrap();
    let failed = books.ask(id("n"), ReadWide("x".into())).await;
    assert!(matches!(failed, Err(AskError::Store(_))), "{failed:?}");
    let after = books.ask(id("n"), list("", None, 10, false)).await.unwrap();
    assert_eq!(
        after,
        vec!["x"],
        "nothing the handler did after the failed read was written"
    );
    // A read of an entry that does not exist is no failure.
    assert_eq!(books.ask(id("n"), ReadWide("nope".into())).await, Ok(false));
}
