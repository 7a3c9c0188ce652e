//! How collections misbehave while staying valid OData: a listing that shows fewer profiles
//! than exist (or none), pages shorter than `$top` and of varying size, data that drifts while
//! a client pages through it, and indicator collections that answer 404 for listed profiles.
//!
//! Each answer gets a [`Shape`] that says how it deviates from the plain store; the resources
//! apply it while they render.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use clap::ValueEnum;
use serde_json::value::RawValue;

use crate::faults::Dice;
use crate::json::{replace_member, string};
use crate::lock;
use crate::rng::mix64;
use crate::target::Resource;
use crate::timefmt::{Fraction, rfc3339};

/// `--drift`: what happens to a collection once its first page has been served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Drift {
    /// The first record moves to the end. A client paging with `$skip` then misses the record
    /// that slid back across the page boundary and sees the moved one twice.
    Move,
    /// The last record changes: an indicator's `lastSeenDateTime` becomes the time of the
    /// change, a profile's `title` gets " (updated)" appended.
    Change,
}

/// `--list-limit`, `--uneven-pages`, `--drift`, `--indicators-404`, `--indicators-404-rate`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListingPlan {
    /// The profile listing shows at most the first N profiles (0: `{"value": []}`).
    pub limit: Option<usize>,
    pub uneven: bool,
    pub drift: Option<Drift>,
    /// Profiles whose indicator collection answers 404 although they are listed.
    pub missing_indicators: Vec<String>,
    /// Share of profiles (a fixed set for a given `--seed`) whose indicators answer 404.
    pub missing_indicators_rate: f64,
}

/// The plan and what has drifted so far.
#[derive(Debug)]
pub struct Listing {
    plan: ListingPlan,
    seed: u64,
    /// Collections whose first page has been served, with the time their drift happened.
    drifted: Mutex<HashMap<String, SystemTime>>,
}

/// How one collection answer deviates from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// The listing shows only the first N profiles.
    pub limit: Option<usize>,
    /// A random number picking this page's size in `[0, $top]` (`--uneven-pages`).
    pub page_draw: Option<u64>,
    pub drift: Option<DriftView>,
}

/// A drift that has happened to this collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftView {
    pub kind: Drift,
    /// When it happened (the `lastSeenDateTime` of a changed indicator).
    pub at: SystemTime,
}

impl Listing {
    pub fn new(plan: ListingPlan, seed: u64) -> Self {
        Listing {
            plan,
            seed,
            drifted: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the indicator collection of this (listed) profile answers 404. The rate picks
    /// a fixed set: the same profiles fail on every request and every run.
    pub fn indicators_missing(&self, profile_id: &str) -> bool {
        if self
            .plan
            .missing_indicators
            .iter()
            .any(|id| id == profile_id)
        {
            return true;
        }
        let rate = self.plan.missing_indicators_rate;
        rate > 0.0 && unit(mix64(self.seed ^ fnv1a(profile_id.as_bytes()))) < rate
    }

    /// The shape of this answer. A collection drifts right after its first answer: that one
    /// shows the data as it was, every later one (other pages, later runs) as it is now.
    pub fn shape(&self, resource: &Resource, dice: &Dice) -> Shape {
        let key = match resource {
            Resource::ProfileList => "intelProfiles".to_owned(),
            Resource::ProfileIndicators(id) => format!("intelProfiles/{id}/indicators"),
            Resource::ProfileCount => {
                return Shape {
                    limit: self.plan.limit,
                    ..Shape::default()
                };
            }
            _ => return Shape::default(),
        };
        let drift = self.plan.drift.and_then(|kind| {
            let mut drifted = lock(&self.drifted);
            match drifted.get(&key) {
                Some(&at) => Some(DriftView { kind, at }),
                None => {
                    drifted.insert(key, SystemTime::now());
                    None
                }
            }
        });
        Shape {
            limit: matches!(resource, Resource::ProfileList)
                .then_some(self.plan.limit)
                .flatten(),
            page_draw: self.plan.uneven.then(|| dice.up_to(u64::MAX - 1)),
            drift,
        }
    }

    /// Collections that have drifted (for the stats).
    pub fn drifted(&self) -> usize {
        lock(&self.drifted).len()
    }
}

impl Shape {
    /// Where the `k`-th record the client sees now sits in the store's list of `n`.
    pub fn position(&self, k: usize, n: usize) -> usize {
        match &self.drift {
            Some(DriftView {
                kind: Drift::Move, ..
            }) if n > 0 => (k + 1) % n,
            _ => k,
        }
    }

    /// The record at store position `n - 1` as it reads after a `change` drift, if it changed.
    /// `member` is the member that changes: `lastSeenDateTime` or `title`.
    pub fn changed_last(&self, last: Option<&RawValue>, member: &str) -> Option<Box<RawValue>> {
        let DriftView {
            kind: Drift::Change,
            at,
        } = self.drift.as_ref()?
        else {
            return None;
        };
        let last = last?;
        let new_value = if member == "title" {
            let title = crate::json::object_members(last)?
                .into_iter()
                .find(|(k, _)| k == "title")
                .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
                .unwrap_or_default();
            string(&format!("{title} (updated)"))
        } else {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            string(&rfc3339(secs, Fraction::None))
        };
        let text = replace_member(last, member, &new_value)?;
        RawValue::from_string(text).ok()
    }

    /// This page's size for a requested `$top`.
    pub fn page_size(&self, top: u64) -> u64 {
        match self.page_draw {
            Some(draw) => draw % top.saturating_add(1),
            None => top,
        }
    }
}

/// A `u64` mapped to `[0, 1)`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a: a stable hash of a profile id (std's hasher is randomised per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn missing_indicators_are_a_fixed_set() {
        let listing = Listing::new(
            ListingPlan {
                missing_indicators: vec!["exact".into()],
                missing_indicators_rate: 0.3,
                ..ListingPlan::default()
            },
            7,
        );
        assert!(listing.indicators_missing("exact"));
        let ids: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
        let first: Vec<bool> = ids
            .iter()
            .map(|id| listing.indicators_missing(id))
            .collect();
        let again: Vec<bool> = ids
            .iter()
            .map(|id| listing.indicators_missing(id))
            .collect();
        assert_eq!(first, again);
        let hits = first.iter().filter(|m| **m).count();
        assert!((220..380).contains(&hits), "about 30 %: {hits}");
        let none = Listing::new(ListingPlan::default(), 7);
        assert!(!ids.iter().any(|id| none.indicators_missing(id)));
    }

    #[test]
    fn a_collection_drifts_after_its_first_answer() {
        let listing = Listing::new(
            ListingPlan {
                drift: Some(Drift::Move),
                ..ListingPlan::default()
            },
            0,
        );
        let dice = Dice::new(0);
        let a = Resource::ProfileIndicators("a".into());
        assert_eq!(listing.shape(&a, &dice).drift, None);
        let later = listing.shape(&a, &dice);
        assert_eq!(later.drift.as_ref().map(|d| d.kind), Some(Drift::Move));
        assert_eq!(
            (0..4).map(|k| later.position(k, 4)).collect::<Vec<_>>(),
            [1, 2, 3, 0]
        );
        let b = Resource::ProfileIndicators("b".into());
        assert_eq!(listing.shape(&b, &dice).drift, None, "per collection");
        assert_eq!(listing.drifted(), 2);
    }

    #[test]
    fn a_change_rewrites_one_member_in_place() {
        let shape = Shape {
            drift: Some(DriftView {
                kind: Drift::Change,
                at: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            }),
            ..Shape::default()
        };
        let raw = RawValue::from_string(
            r#"{"id":"i","lastSeenDateTime":null,"artifact":{"id":"h"}}"#.into(),
        )
        .unwrap();
        let changed = shape.changed_last(Some(&raw), "lastSeenDateTime").unwrap();
        assert_eq!(
            changed.get(),
            r#"{"id":"i","lastSeenDateTime":"2023-11-14T22:13:20Z","artifact":{"id":"h"}}"#
        );
        let profile = RawValue::from_string(r#"{"id":"p","title":"Aqua"}"#.into()).unwrap();
        let changed = shape.changed_last(Some(&profile), "title").unwrap();
        assert_eq!(changed.get(), r#"{"id":"p","title":"Aqua (updated)"}"#);
        assert!(Shape::default().changed_last(Some(&raw), "title").is_none());
    }

    #[test]
    fn uneven_sizes_stay_within_top() {
        let dice = Dice::new(3);
        let listing = Listing::new(
            ListingPlan {
                uneven: true,
                ..ListingPlan::default()
            },
            3,
        );
        let sizes: Vec<u64> = (0..500)
            .map(|_| listing.shape(&Resource::ProfileList, &dice).page_size(4))
            .collect();
        assert!(sizes.iter().all(|s| *s <= 4));
        for size in 0..=4 {
            assert!(sizes.contains(&size), "{size} drawn");
        }
        assert_eq!(Shape::default().page_size(4), 4);
    }
}
