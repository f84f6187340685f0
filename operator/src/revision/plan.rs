//! What recording a revision takes (pure): create it, renumber an existing
//! one, or nothing; and which revisions the history limit prunes.

/// A ControllerRevision the Stream already has.
#[derive(Clone, Debug, PartialEq)]
pub struct Existing {
    pub name: String,
    pub number: i64,
    /// Whether its data is the data being recorded.
    pub same_data: bool,
    /// The Stream's change-cause annotation when it was recorded (stale or not).
    pub seen_cause: Option<String>,
}

/// The one write recording takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// The spec is the newest revision's already.
    Nothing,
    /// A new ControllerRevision.
    Create,
    /// The spec is an earlier revision's: that one becomes the newest.
    Renumber { name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The number of the revision of the spec once written.
    pub current: i64,
    pub write: Write,
    /// The change cause to record with the write (`None`: none, or keep its own).
    pub cause: Option<String>,
    /// ControllerRevisions to delete, oldest first.
    pub prune: Vec<String>,
}

/// Why the revision cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "ControllerRevision {0} exists with other data (a hash collision, or it was edited by hand); delete it to let the Stream record its revision"
)]
pub struct Collision(pub String);

/// The plan for recording revision `name` (whose data each [`Existing`]
/// says it equals or not) with change cause `cause`, keeping `limit`.
///
/// A cause the Stream already carried when the newest revision was
/// recorded is stale (the annotation stayed on the Stream through a later
/// edit) and is not recorded again.
pub fn plan(
    existing: &[Existing],
    name: &str,
    cause: Option<&str>,
    limit: usize,
) -> Result<Plan, Collision> {
    let newest = existing.iter().max_by_key(|e| e.number);
    let next = newest.map_or(1, |n| n.number + 1);
    let cause = cause
        .filter(|c| newest.is_none_or(|n| n.seen_cause.as_deref() != Some(*c)))
        .map(str::to_owned);
    let (current, write) = match existing.iter().find(|e| e.name == name) {
        Some(e) if !e.same_data => return Err(Collision(e.name.clone())),
        Some(e) if Some(e.number) == newest.map(|n| n.number) => (e.number, Write::Nothing),
        Some(e) => (
            next,
            Write::Renumber {
                name: e.name.clone(),
            },
        ),
        None => (next, Write::Create),
    };
    let mut kept: Vec<(i64, &str)> = existing
        .iter()
        .filter(|e| e.name != name)
        .map(|e| (e.number, e.name.as_str()))
        .collect();
    kept.sort_unstable();
    // The current revision is always kept: the oldest others make room for it.
    let excess = (kept.len() + 1).saturating_sub(limit.max(1));
    let prune = kept[..excess.min(kept.len())]
        .iter()
        .map(|(_, n)| (*n).to_owned())
        .collect();
    Ok(Plan {
        current,
        cause: if write == Write::Nothing { None } else { cause },
        write,
        prune,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(name: &str, number: i64, same: bool) -> Existing {
        Existing {
            name: name.into(),
            number,
            same_data: same,
            seen_cause: None,
        }
    }

    #[test]
    fn the_first_revision_is_number_one_and_a_new_spec_takes_the_next_number() {
        let p = plan(&[], "s-a", Some("first"), 10).unwrap();
        assert_eq!((p.current, &p.write), (1, &Write::Create));
        assert_eq!(p.cause.as_deref(), Some("first"));
        let p = plan(
            &[existing("s-a", 1, false), existing("s-b", 4, false)],
            "s-c",
            None,
            10,
        )
        .unwrap();
        assert_eq!((p.current, p.write, p.prune.len()), (5, Write::Create, 0));
    }

    #[test]
    fn the_newest_revision_unchanged_writes_nothing() {
        let p = plan(
            &[existing("s-a", 1, false), existing("s-b", 2, true)],
            "s-b",
            Some("x"),
            10,
        )
        .unwrap();
        assert_eq!((p.current, p.write, p.cause), (2, Write::Nothing, None));
    }

    #[test]
    fn an_earlier_spec_again_renumbers_its_revision_as_the_newest() {
        let p = plan(
            &[existing("s-a", 1, true), existing("s-b", 2, false)],
            "s-a",
            Some("rollback to revision 1"),
            10,
        )
        .unwrap();
        assert_eq!(p.current, 3);
        assert_eq!(p.write, Write::Renumber { name: "s-a".into() });
        assert_eq!(p.cause.as_deref(), Some("rollback to revision 1"));
        assert!(p.prune.is_empty());
    }

    #[test]
    fn the_oldest_revisions_are_pruned_to_the_limit_never_the_current_one() {
        let all = [
            existing("s-c", 3, false),
            existing("s-a", 1, true),
            existing("s-b", 2, false),
        ];
        // A new one at limit 3: the oldest goes.
        assert_eq!(plan(&all, "s-d", None, 3).unwrap().prune, ["s-a"]);
        // Limit 2: the two oldest.
        assert_eq!(plan(&all, "s-d", None, 2).unwrap().prune, ["s-a", "s-b"]);
        // The oldest is the spec again: it is renumbered 4 and kept; s-b goes.
        let p = plan(&all, "s-a", None, 2).unwrap();
        assert_eq!((p.current, p.prune), (4, vec!["s-b".to_owned()]));
        // Limit 1 keeps only the current one.
        assert_eq!(
            plan(&all, "s-d", None, 1).unwrap().prune,
            ["s-a", "s-b", "s-c"]
        );
    }

    #[test]
    fn a_cause_the_newest_revision_already_has_is_stale() {
        let mut newest = existing("s-b", 2, false);
        newest.seen_cause = Some("bump".into());
        let p = plan(
            &[existing("s-a", 1, false), newest],
            "s-c",
            Some("bump"),
            10,
        )
        .unwrap();
        assert_eq!((p.current, p.cause), (3, None));
    }

    #[test]
    fn a_name_with_other_data_is_a_collision_not_a_silent_reuse() {
        let e = plan(&[existing("s-a", 1, false)], "s-a", None, 10).unwrap_err();
        assert!(e.to_string().contains("ControllerRevision s-a"), "{e}");
    }
}
