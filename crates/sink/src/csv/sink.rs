//! `--to csv:<file>`: one row per indicator occurrence (an indicator listed by three profiles gives
//! three rows), for SIEMs, firewalls and spreadsheets.
//!
//! The file is RFC 4180 CSV (header row, `,` separator, CRLF line ends, fields quoted when they
//! hold `,`, `"` or a line break), written with the `csv` crate. Columns are chosen and ordered
//! with `--csv-columns`.
//!
//! `--csv-mode` chooses what the file holds. A snapshot (the default) lists every current
//! indicator occurrence, whatever earlier runs wrote. A delta, meant for `--state` runs, lists only
//! what changed since the run this sink last acknowledged, each row led by an `action` column:
//! `new` (an occurrence the sink never had: a new indicator, or a known one newly listed by this
//! profile), `changed` (a later version of an occurrence it had) or `revoked` (the profile no longer
//! lists the indicator; only the value, type, profile, STIX id and TLP cells are filled, and the
//! profile's title and kind when its record came earlier in the run). Without `--state` a delta
//! holds every occurrence as `new`; with `--full`, occurrences the sink already had are `changed`,
//! as is one listed again after it was revoked.
//!
//! Spreadsheet formula injection is neutralized: a cell that starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return gets a leading `'`, so that Excel, LibreOffice and Google Sheets show it
//! as text instead of evaluating it (a profile title such as `=HYPERLINK(…)` stays inert). Indicator
//! values never start with these characters except in rare e-mail addresses; a consumer that
//! needs the raw value strips one leading `'` from such cells.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ctiport_model::record::{Emitted, Mapped, MappedIndicator, Membership};
use ctiport_model::stix::EncodedObject;

use super::config::{Column, CsvMode};
use crate::io_adapter::{AtomicWriter, csv_error};
use crate::{Sink, SinkError, SinkReport};

/// The `action` of a delta row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// An occurrence the sink never had.
    New,
    /// A later version of an occurrence the sink had.
    Changed,
    /// The profile no longer lists the indicator.
    Revoked,
}

impl Action {
    /// The name written in the `action` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::New => "new",
            Action::Changed => "changed",
            Action::Revoked => "revoked",
        }
    }
}

/// The header of the `action` column of a delta.
pub const ACTION_COLUMN: &str = "action";

/// A cell a spreadsheet would evaluate as a formula gets a leading `'`.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

struct ProfileFacts {
    title: String,
    kind: String,
    /// The STIX id its `indicates` relationships point at.
    indicated_ref: String,
}

/// What a row is written from.
enum RowSource<'a> {
    Indicator(&'a MappedIndicator),
    /// A revoked membership: the indicator left the profile.
    Revoked(&'a Membership),
}

pub struct CsvSink {
    path: PathBuf,
    writer: ::csv::Writer<AtomicWriter>,
    columns: Vec<Column>,
    tlp: String,
    mode: CsvMode,
    /// The last state-store run the sink acknowledged (delta mode tells new from changed by it).
    acked: Option<u32>,
    /// Title and kind of every profile (grows with profiles, not with indicators).
    profiles: HashMap<String, ProfileFacts>,
    rows: u64,
}

impl CsvSink {
    pub fn create(
        path: &Path,
        columns: &[Column],
        tlp: &str,
        mode: CsvMode,
    ) -> Result<Self, SinkError> {
        if columns.is_empty() {
            return Err(SinkError::Other("no CSV columns".into()));
        }
        let writer = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .quote_style(::csv::QuoteStyle::Necessary)
            .from_writer(AtomicWriter::create(path)?);
        let mut sink = CsvSink {
            path: path.to_owned(),
            writer,
            columns: columns.to_vec(),
            tlp: tlp.to_owned(),
            mode,
            acked: None,
            profiles: HashMap::new(),
            rows: 0,
        };
        let action = (mode == CsvMode::Delta).then_some(ACTION_COLUMN);
        let header: Vec<&str> = action
            .into_iter()
            .chain(sink.columns.iter().map(|c| c.name()))
            .collect();
        sink.writer
            .write_record(&header)
            .map_err(|e| csv_error(&sink.path, e))?;
        Ok(sink)
    }

    fn cell(&self, column: Column, row: &RowSource<'_>) -> String {
        let indicator = match row {
            RowSource::Indicator(indicator) => indicator,
            RowSource::Revoked(membership) => return self.revoked_cell(column, membership),
        };
        let profile = self.profiles.get(&indicator.profile_id);
        match column {
            Column::Value => indicator.value.clone(),
            Column::Type => indicator.observable_type.as_str().to_owned(),
            Column::ProfileId => indicator.profile_id.clone(),
            Column::ProfileTitle => profile.map(|p| p.title.clone()).unwrap_or_default(),
            Column::Kind => profile.map(|p| p.kind.clone()).unwrap_or_default(),
            Column::Source => indicator
                .source
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            Column::FirstSeen => indicator
                .first_seen
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Column::LastSeen => indicator
                .last_seen
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Column::Confidence => indicator
                .confidence
                .map(|c| c.to_string())
                .unwrap_or_default(),
            Column::Tlp => self.tlp.clone(),
            Column::StixId => indicator.stix_id.clone(),
            Column::IndicatorId => indicator.indicator_id.clone(),
        }
    }

    /// A cell of a revoked row: what the membership and the run know, the rest empty.
    fn revoked_cell(&self, column: Column, membership: &Membership) -> String {
        let profile = self.profiles.get(&membership.profile_id);
        match column {
            Column::Value => membership.value.clone(),
            Column::Type => membership.observable_type.as_str().to_owned(),
            Column::ProfileId => membership.profile_id.clone(),
            Column::ProfileTitle => profile.map(|p| p.title.clone()).unwrap_or_default(),
            Column::Kind => profile.map(|p| p.kind.clone()).unwrap_or_default(),
            // The row still carries the value, under the run's marking.
            Column::Tlp => self.tlp.clone(),
            Column::StixId => membership.indicator_stix_id.clone(),
            Column::Source
            | Column::FirstSeen
            | Column::LastSeen
            | Column::Confidence
            | Column::IndicatorId => String::new(),
        }
    }

    /// Writes one row, every cell neutralized; a delta row starts with its action.
    fn write_row(&mut self, action: Option<Action>, row: RowSource<'_>) -> Result<(), SinkError> {
        let action = action.map(|a| a.as_str().to_owned());
        let cells: Vec<String> = action
            .into_iter()
            .chain(self.columns.iter().map(|column| self.cell(*column, &row)))
            .map(|cell| neutralize(&cell).into_owned())
            .collect();
        self.writer
            .write_record(&cells)
            .map_err(|e| csv_error(&self.path, e))?;
        self.rows += 1;
        Ok(())
    }

    /// Whether the sink already had this occurrence: the indicator and its `indicates`
    /// relationship to this profile both come from runs the sink acknowledged.
    fn action(&self, indicator: &MappedIndicator) -> Action {
        let Some(acked) = self.acked else {
            return Action::New;
        };
        let indicated_ref = self
            .profiles
            .get(&indicator.profile_id)
            .map(|p| p.indicated_ref.as_str());
        let refers_to = |emitted: &Emitted, id: &str| {
            emitted.object.references.iter().any(|r| r.as_str() == id)
        };
        let mut occurrence = indicator.objects.iter().filter(|emitted| {
            *emitted.object.id == *indicator.stix_id
                || (&*emitted.object.object_type == "relationship"
                    && refers_to(emitted, &indicator.stix_id)
                    && indicated_ref.is_some_and(|r| refers_to(emitted, r)))
        });
        if occurrence.any(|emitted| emitted.version.origin > acked) {
            Action::New
        } else {
            Action::Changed
        }
    }
}

impl Sink for CsvSink {
    fn begin(&mut self, _preamble: &[EncodedObject]) -> Result<(), SinkError> {
        Ok(())
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        match record {
            Mapped::Profile(profile) => {
                self.profiles.insert(
                    profile.profile_id.clone(),
                    ProfileFacts {
                        title: profile.title.clone(),
                        kind: profile.kind.as_str().to_owned(),
                        indicated_ref: profile.indicated_ref.clone(),
                    },
                );
                Ok(())
            }
            Mapped::Indicator(indicator) => match self.mode {
                CsvMode::Snapshot => self.write_row(None, RowSource::Indicator(indicator)),
                // Only an occurrence with something to write (a new or changed version).
                CsvMode::Delta if indicator.objects.iter().any(|e| e.first) => {
                    let action = self.action(indicator);
                    self.write_row(Some(action), RowSource::Indicator(indicator))
                }
                CsvMode::Delta => Ok(()),
            },
            // A snapshot lists what is current; a revoked indicator is simply absent. A delta
            // says that an indicator left a profile; other revocations (a profile's objects, a
            // note) have no row.
            Mapped::Revoked(revocation) => match (&revocation.membership, self.mode) {
                (Some(membership), CsvMode::Delta) if revocation.object.first => {
                    self.write_row(Some(Action::Revoked), RowSource::Revoked(membership))
                }
                _ => Ok(()),
            },
        }
    }

    fn delivery(&self) -> crate::Delivery {
        match self.mode {
            CsvMode::Snapshot => crate::Delivery::Snapshot,
            CsvMode::Delta => crate::Delivery::Changes,
        }
    }

    fn acknowledged(&mut self, run: Option<u32>) {
        self.acked = run;
    }

    fn finish(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let CsvSink {
            path, writer, rows, ..
        } = *self;
        let file = writer
            .into_inner()
            .map_err(|e| SinkError::Other(format!("{}: {}", path.display(), e.error())))?;
        let path = file.commit()?;
        Ok(SinkReport {
            objects: rows,
            files: vec![path.display().to_string()],
            ..SinkReport::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use ctiport_model::graph::{IndicatorSource, IntelProfile, ProfileKind};
    use ctiport_model::record::{MappedProfile, ObservableType, Revocation, Version};
    use ctiport_model::timestamp::Timestamp;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn records() -> Vec<Mapped> {
        let graph = IntelProfile::titled("p1", ProfileKind::Actor, "=HYPERLINK(\"http://x\")");
        let indicator = |id: &str, value: &str| {
            Mapped::Indicator(MappedIndicator {
                indicator_id: id.into(),
                profile_id: "p1".into(),
                observable_type: ObservableType::Url,
                value: value.into(),
                source: Some(IndicatorSource::Microsoft),
                first_seen: Timestamp::parse("2024-01-02T03:04:05Z"),
                last_seen: None,
                confidence: Some(85),
                host: None,
                stix_id: format!("indicator--{id}"),
                objects: vec![],
            })
        };
        vec![
            Mapped::Profile(MappedProfile {
                profile_id: "p1".into(),
                title: "=HYPERLINK(\"http://x\")".into(),
                kind: ProfileKind::Actor,
                indicated_ref: "threat-actor--x".into(),
                profile: Arc::new(graph),
                objects: vec![],
            }),
            indicator("i1", "http://a.example/x,y\"z"),
            indicator("i2", "http://b.example/\r\nnext"),
        ]
    }

    #[test]
    fn writes_rfc4180_rows_with_neutralized_cells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink =
            Box::new(CsvSink::create(&path, Column::DEFAULT, "amber", CsvMode::Snapshot).unwrap());
        for record in records() {
            sink.write(&record).unwrap();
        }
        assert!(!path.exists());
        let report = sink.finish().unwrap();
        assert_eq!(report.objects, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(
                "value,type,profile_id,profile_title,kind,source,first_seen,last_seen,confidence,tlp,stix_id"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "\"http://a.example/x,y\"\"z\",url,p1,\"'=HYPERLINK(\"\"http://x\"\")\",actor,microsoft,2024-01-02T03:04:05.000Z,,85,amber,indicator--i1"
            )
        );
        let mut reader = ::csv::Reader::from_path(&path).unwrap();
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[1][0], "http://b.example/\r\nnext");
    }

    #[test]
    fn columns_are_chosen_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let columns = Column::parse_list("stix_id,value").unwrap();
        let mut sink =
            Box::new(CsvSink::create(&path, &columns, "amber", CsvMode::Snapshot).unwrap());
        for record in records() {
            sink.write(&record).unwrap();
        }
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("stix_id,value\r\nindicator--i1,\"http://a.example/x,y\"\"z\"\r\n"),
            "{text}"
        );
    }

    fn encoded(id: &str, references: &[&str]) -> EncodedObject {
        EncodedObject {
            id: id.into(),
            object_type: id.split("--").next().unwrap().into(),
            json: format!(r#"{{"id":"{id}"}}"#).into(),
            references: references
                .iter()
                .map(|r| (*r).to_owned())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// `(first, run, origin)` of an object in a record.
    type Ver = (bool, u32, u32);

    fn emitted(id: &str, references: &[&str], (first, run, origin): Ver) -> Emitted {
        Emitted {
            object: encoded(id, references),
            first,
            version: Version { run, origin },
        }
    }

    fn profile(id: &str, title: &str, kind: ProfileKind, indicated_ref: &str) -> Mapped {
        let graph = IntelProfile::titled(id, kind.clone(), title);
        Mapped::Profile(MappedProfile {
            profile_id: id.into(),
            title: title.into(),
            kind,
            indicated_ref: indicated_ref.into(),
            profile: Arc::new(graph),
            objects: vec![emitted(indicated_ref, &[], (false, 1, 1))],
        })
    }

    /// An indicator occurrence: the indicator, whatever `extra` objects, and the `indicates`
    /// relationship to `profile_ref`.
    #[allow(clippy::too_many_arguments)]
    fn occurrence(
        id: &str,
        profile_id: &str,
        profile_ref: &str,
        observable_type: ObservableType,
        value: &str,
        indicator: Ver,
        extra: Vec<Emitted>,
        relationship: Ver,
    ) -> Mapped {
        let stix_id = format!("indicator--{id}");
        let mut objects = vec![emitted(
            &stix_id,
            &["identity--producer", "marking-definition--tlp"],
            indicator,
        )];
        objects.extend(extra);
        objects.push(emitted(
            &format!("relationship--{id}-{profile_id}"),
            &["identity--producer", &stix_id, profile_ref],
            relationship,
        ));
        Mapped::Indicator(MappedIndicator {
            indicator_id: id.into(),
            profile_id: profile_id.into(),
            observable_type,
            value: value.into(),
            source: Some(IndicatorSource::Microsoft),
            first_seen: Timestamp::parse("2024-01-02T03:04:05Z"),
            last_seen: None,
            confidence: Some(85),
            host: None,
            stix_id,
            objects,
        })
    }

    fn revoked(membership: Option<Membership>) -> Mapped {
        Mapped::Revoked(Revocation {
            object: emitted("relationship--revoked", &[], (true, 4, 1)),
            membership,
        })
    }

    fn membership(profile_id: &str, stix_id: &str, t: ObservableType, value: &str) -> Membership {
        Membership {
            profile_id: profile_id.into(),
            indicator_stix_id: stix_id.into(),
            observable_type: t,
            value: value.into(),
        }
    }

    /// Run 4 as a sink that acknowledged run 3 sees it.
    fn delta_records() -> Vec<Mapped> {
        use ObservableType::{Domain, Ipv4, Url};
        vec![
            profile(
                "p1",
                "=HYPERLINK(\"http://x\")",
                ProfileKind::Actor,
                "threat-actor--p1",
            ),
            // A new indicator.
            occurrence(
                "i1",
                "p1",
                "threat-actor--p1",
                Url,
                "http://new.example/",
                (true, 4, 4),
                vec![],
                (true, 4, 4),
            ),
            // A later version of one the sink had; a new shared object beside it (an
            // autonomous system first seen now) does not make the occurrence new.
            occurrence(
                "i2",
                "p1",
                "threat-actor--p1",
                Domain,
                "@changed.example",
                (true, 4, 2),
                vec![emitted("autonomous-system--a", &[], (true, 4, 4))],
                (true, 4, 2),
            ),
            profile("p2", "Quiet Tool", ProfileKind::Tool, "tool--p2"),
            // A known indicator that this profile lists for the first time.
            occurrence(
                "i3",
                "p2",
                "tool--p2",
                Domain,
                "known.example",
                (false, 2, 2),
                vec![],
                (true, 4, 4),
            ),
            // Nothing new: no row.
            occurrence(
                "i4",
                "p2",
                "tool--p2",
                Domain,
                "quiet.example",
                (false, 2, 2),
                vec![],
                (false, 2, 2),
            ),
            revoked(Some(membership(
                "p1",
                "indicator--gone",
                Domain,
                "+gone.example",
            ))),
            // A profile this run never showed: no title, no kind.
            revoked(Some(membership(
                "p9",
                "indicator--gone2",
                Ipv4,
                "198.51.100.7",
            ))),
            // Not an indicator leaving a profile: no row.
            revoked(None),
        ]
    }

    /// Writes `records` to a CSV sink with every column and returns the rows read back (header
    /// first) and the report's row count.
    fn write_all(
        mode: CsvMode,
        acked: Option<Option<u32>>,
        records: &[Mapped],
    ) -> (Vec<Vec<String>>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = Box::new(CsvSink::create(&path, &Column::ALL, "amber", mode).unwrap());
        if let Some(acked) = acked {
            sink.acknowledged(acked);
        }
        for record in records {
            sink.write(record).unwrap();
        }
        let report = sink.finish().unwrap();
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&path)
            .unwrap();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (rows, report.objects)
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    const ALL_HEADER: [&str; 12] = [
        "value",
        "type",
        "profile_id",
        "profile_title",
        "kind",
        "source",
        "first_seen",
        "last_seen",
        "confidence",
        "tlp",
        "stix_id",
        "indicator_id",
    ];

    const SEEN: &str = "2024-01-02T03:04:05.000Z";
    const TITLE: &str = "'=HYPERLINK(\"http://x\")";

    #[test]
    fn a_delta_says_what_is_new_changed_and_revoked() {
        let (rows, count) = write_all(CsvMode::Delta, Some(Some(3)), &delta_records());
        let mut header = vec!["action"];
        header.extend(ALL_HEADER);
        #[rustfmt::skip]
        let expected = vec![
            row(&header),
            row(&["new", "http://new.example/", "url", "p1", TITLE, "actor", "microsoft", SEEN, "", "85", "amber", "indicator--i1", "i1"]),
            row(&["changed", "'@changed.example", "domain", "p1", TITLE, "actor", "microsoft", SEEN, "", "85", "amber", "indicator--i2", "i2"]),
            row(&["new", "known.example", "domain", "p2", "Quiet Tool", "tool", "microsoft", SEEN, "", "85", "amber", "indicator--i3", "i3"]),
            row(&["revoked", "'+gone.example", "domain", "p1", TITLE, "actor", "", "", "", "", "amber", "indicator--gone", ""]),
            row(&["revoked", "198.51.100.7", "ipv4", "p9", "", "", "", "", "", "", "amber", "indicator--gone2", ""]),
        ];
        assert_eq!(rows, expected);
        assert_eq!(count, 5);
    }

    #[test]
    fn a_delta_puts_the_action_first_before_the_chosen_columns() {
        let columns = Column::parse_list("profile_title,value").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = Box::new(CsvSink::create(&path, &columns, "amber", CsvMode::Delta).unwrap());
        sink.acknowledged(Some(3));
        for record in delta_records() {
            sink.write(&record).unwrap();
        }
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "action,profile_title,value\r\n\
             new,\"'=HYPERLINK(\"\"http://x\"\")\",http://new.example/\r\n\
             changed,\"'=HYPERLINK(\"\"http://x\"\")\",'@changed.example\r\n\
             new,Quiet Tool,known.example\r\n\
             revoked,\"'=HYPERLINK(\"\"http://x\"\")\",'+gone.example\r\n\
             revoked,,198.51.100.7\r\n"
        );
    }

    #[test]
    fn a_sink_never_acknowledged_gets_every_row_as_new() {
        let records: Vec<Mapped> = delta_records()
            .into_iter()
            .filter(|r| !matches!(r, Mapped::Revoked(_)))
            .collect();
        for acked in [None, Some(None)] {
            let (rows, count) = write_all(CsvMode::Delta, acked, &records);
            let actions: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
            assert_eq!(actions, ["action", "new", "new", "new"]);
            assert_eq!(count, 3);
        }
    }

    #[test]
    fn a_snapshot_has_no_action_and_ignores_acknowledgements_and_revocations() {
        let (rows, count) = write_all(CsvMode::Snapshot, Some(Some(3)), &delta_records());
        assert_eq!(rows[0], row(&ALL_HEADER));
        let values: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            values,
            [
                "http://new.example/",
                "'@changed.example",
                "known.example",
                "quiet.example"
            ]
        );
        assert_eq!(count, 4);
    }

    #[test]
    fn the_mode_sets_the_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = CsvSink::create(
            &dir.path().join("s.csv"),
            Column::DEFAULT,
            "amber",
            CsvMode::Snapshot,
        )
        .unwrap();
        let delta = CsvSink::create(
            &dir.path().join("d.csv"),
            Column::DEFAULT,
            "amber",
            CsvMode::Delta,
        )
        .unwrap();
        assert_eq!(snapshot.delivery(), crate::Delivery::Snapshot);
        assert_eq!(delta.delivery(), crate::Delivery::Changes);
    }

    proptest! {
        #[test]
        fn neutralized_cells_never_start_a_formula_and_keep_the_text(cell in "\\PC{0,30}|[=+\\-@\t\r].{0,20}") {
            let out = neutralize(&cell);
            let first = out.chars().next();
            prop_assert!(!matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')));
            // Either unchanged, or exactly one leading quote added.
            prop_assert!(out == cell || out.strip_prefix('\'') == Some(cell.as_str()));
            if out != cell {
                prop_assert!(matches!(cell.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')));
            }
        }
    }
}
