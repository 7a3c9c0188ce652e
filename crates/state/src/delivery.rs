//! What one sink receives of the mapped stream, given what it has acknowledged.
//!
//! A sink that takes changes (STIX files, NDJSON, TAXII, CSV in delta mode) receives each object
//! whose version it does not hold yet: the whole stream for a sink never acknowledged, the
//! versions made since its last acknowledged run for the others, and the revocations among them.
//! A sink that takes a snapshot (MISP, CSV snapshot) builds its output from the whole current
//! state, so it receives every record; the counts still say what is new to it.

use std::ops::Deref;
use std::sync::Arc;

use ctiport_model::record::{Emitted, Mapped};

/// What a sink has and wants: [`Position::default`] without a state store, else
/// [`Versioner::position`](crate::Versioner::position).
#[derive(Clone, Copy, Debug, Default)]
pub struct Position {
    /// Without a state store every run delivers everything.
    pub stateful: bool,
    /// The last run the sink acknowledged; `None` for a sink the store has never seen, which gets
    /// the full current state (and no revocations of what it never had).
    pub acked: Option<u32>,
    /// `--full`: the current state again, whatever the sink acknowledged.
    pub full: bool,
}

impl Position {
    fn wants(&self, emitted: &Emitted, revocation: bool) -> bool {
        if !self.stateful {
            return true;
        }
        match self.acked {
            None => !revocation,
            Some(acked) => emitted.version.run > acked || (self.full && !revocation),
        }
    }

    /// Whether the sink held an earlier version of an object it wants.
    fn had_before(&self, emitted: &Emitted) -> bool {
        self.acked
            .is_some_and(|acked| emitted.version.origin <= acked)
    }
}

/// What a run delivered to one sink, counted in distinct objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeltaCounts {
    /// Objects the sink never had.
    pub new: u64,
    /// Later versions of objects the sink had.
    pub changed: u64,
    pub revoked: u64,
    /// Objects the sink already held in this version, and so was not sent.
    pub unchanged: u64,
}

/// A record as one sink sees it. In a view, [`Emitted::first`] says whether this sink is to write
/// the object, where in the mapping's records it says whether the run met the object for the
/// first time. A snapshot sink's views are the records as the mapping made them.
#[derive(Clone, Debug)]
pub struct View(Arc<Mapped>);

impl View {
    /// Whether the view holds anything this sink is to write (a profile record may come only as
    /// context for the indicators after it).
    pub fn carries_news(&self) -> bool {
        self.0.objects().iter().any(|e| e.first)
    }
}

impl Deref for View {
    type Target = Mapped;

    fn deref(&self) -> &Mapped {
        &self.0
    }
}

/// Decides, record by record, what one sink receives, and counts it.
pub struct Selector {
    position: Position,
    /// The sink builds its output from the whole current state (MISP events, CSV snapshots), so
    /// it receives every record; the counts still say what is new to it.
    snapshot: bool,
    counts: DeltaCounts,
}

impl Selector {
    /// The selector of a sink at `position`; `snapshot` for a sink that builds its output from the
    /// whole current state (`ctiport_sink::Delivery::Snapshot`).
    pub fn new(position: Position, snapshot: bool) -> Self {
        Selector {
            position,
            snapshot,
            counts: DeltaCounts::default(),
        }
    }

    /// What was new, changed, revoked and unchanged for this sink so far.
    pub fn counts(&self) -> &DeltaCounts {
        &self.counts
    }

    /// The record as this sink should see it, or `None` when it has nothing for the sink.
    pub fn view(&mut self, record: &Arc<Mapped>) -> Option<View> {
        let revocation = matches!(**record, Mapped::Revoked(_));
        let wanted: Vec<bool> = record
            .objects()
            .iter()
            .map(|emitted| {
                let wanted = emitted.first && self.position.wants(emitted, revocation);
                if emitted.first {
                    self.count(emitted, wanted, revocation);
                }
                wanted
            })
            .collect();
        if self.snapshot {
            return Some(View(record.clone()));
        }
        let any = wanted.iter().any(|w| *w);
        if !any && !matches!(**record, Mapped::Profile(_)) {
            return None;
        }
        let unchanged = record
            .objects()
            .iter()
            .zip(&wanted)
            .all(|(emitted, wanted)| emitted.first == *wanted);
        if unchanged {
            return Some(View(record.clone()));
        }
        let mut view = (**record).clone();
        for (emitted, wanted) in view.objects_mut().iter_mut().zip(wanted) {
            emitted.first = wanted;
        }
        Some(View(Arc::new(view)))
    }

    /// The preamble objects this sink wants, counted like the rest.
    pub fn preamble_news(&mut self, preamble: &[Emitted]) -> bool {
        let mut any = false;
        for emitted in preamble {
            let wanted = self.position.wants(emitted, false);
            self.count(emitted, wanted, false);
            any |= wanted;
        }
        any
    }

    fn count(&mut self, emitted: &Emitted, wanted: bool, revocation: bool) {
        let counter = match (wanted, revocation) {
            (false, _) => &mut self.counts.unchanged,
            (true, true) => &mut self.counts.revoked,
            (true, false) if self.position.stateful && self.position.had_before(emitted) => {
                &mut self.counts.changed
            }
            (true, false) => &mut self.counts.new,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::versioned as emitted;
    use ctiport_model::record::Revocation;

    fn revocation(run: u32) -> Arc<Mapped> {
        Arc::new(Mapped::Revoked(Revocation {
            object: emitted("relationship--r", run, 1, true),
            membership: None,
        }))
    }

    fn selector(acked: Option<u32>, full: bool) -> Selector {
        let position = Position {
            stateful: true,
            acked,
            full,
        };
        Selector::new(position, false)
    }

    #[test]
    fn a_sink_gets_what_it_has_not_acknowledged() {
        let mut lagging = selector(Some(1), false);
        let mut current = selector(Some(3), false);
        let profile = Arc::new(Mapped::Revoked(Revocation {
            object: emitted("indicator--a", 2, 1, true),
            membership: None,
        }));
        assert!(lagging.view(&profile).is_some());
        assert!(current.view(&profile).is_none());
        assert_eq!(lagging.counts.revoked, 1);
        assert_eq!(current.counts.unchanged, 1);
    }

    #[test]
    fn a_new_sink_gets_the_current_state_without_revocations() {
        let mut new = selector(None, false);
        assert!(new.view(&revocation(5)).is_none());
        assert!(new.preamble_news(&[emitted("identity--p", 1, 1, true)]));
        assert_eq!(new.counts.new, 1);
    }

    #[test]
    fn full_resends_current_objects_and_only_pending_revocations() {
        let mut full = selector(Some(4), true);
        assert!(full.preamble_news(&[emitted("identity--p", 1, 1, true)]));
        assert!(full.view(&revocation(3)).is_none());
        assert!(full.view(&revocation(5)).is_some());
        assert_eq!(full.counts.changed, 1);
    }

    #[test]
    fn repeats_within_a_run_are_neither_written_nor_counted() {
        let mut sink = selector(Some(1), false);
        let record = Arc::new(Mapped::Revoked(Revocation {
            object: emitted("indicator--a", 2, 2, false),
            membership: None,
        }));
        assert!(sink.view(&record).is_none());
        assert_eq!(sink.counts, DeltaCounts::default());
    }

    #[test]
    fn without_state_everything_goes() {
        let mut sink = Selector::new(Position::default(), false);
        let record = revocation(0);
        assert!(Arc::ptr_eq(&sink.view(&record).unwrap().0, &record));
        assert_eq!(sink.counts.revoked, 1);
    }

    #[test]
    fn a_snapshot_sink_gets_every_record_as_the_mapping_made_it() {
        let position = Position {
            stateful: true,
            acked: Some(3),
            full: false,
        };
        let mut sink = Selector::new(position, true);
        let record = Arc::new(Mapped::Revoked(Revocation {
            object: emitted("indicator--a", 2, 1, true),
            membership: None,
        }));
        let view = sink.view(&record).unwrap();
        assert!(Arc::ptr_eq(&view.0, &record) && view.carries_news());
        assert_eq!(sink.counts().unchanged, 1);
    }
}
