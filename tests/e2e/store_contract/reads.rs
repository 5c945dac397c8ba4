//! The store contract for what lookups read: only the asked record types of live
//! records, and a contribution summary that follows every correction.

use super::*;

/// A record of any type, with a test event (the store decodes only contributions).
fn typed(t: RecordType, id: &str, version: u64, subjects: &[&str]) -> RecordWrite<'static> {
    RecordWrite {
        key: RecordKey::new(t, id),
        ..write(id, version, subjects)
    }
}

fn typed_delete(t: RecordType, id: &str, version: u64) -> RecordWrite<'static> {
    RecordWrite {
        key: RecordKey::new(t, id),
        ..delete(id, version)
    }
}

/// The person subject of a resident ID, as the materializer derives it.
fn person_subject(id: &str) -> String {
    format!("p:{id}")
}

/// A pension (or, for ids starting with `M`, medical) contribution of `person` for one
/// month of 2024.
fn contribution_event(
    id: &str,
    person: &str,
    region: &str,
    month: i32,
    version: u64,
    paid_fen: i64,
) -> RecordEvent {
    let mut period = contribution(person);
    if id.starts_with('M') {
        period.insurance_type = proto::InsuranceType::Medical as i32;
    }
    period.region_code = region.into();
    period.period = Some(proto::YearMonth { year: 2024, month });
    period.personal_fen = paid_fen / 3;
    period.employer_fen = paid_fen - paid_fen / 3;
    record_event(id, version, Payload::ContributionPeriod(period))
}

fn contribution_deletion(id: &str, version: u64) -> RecordEvent {
    deletion_event(RecordType::ContributionPeriod, id, version)
}

/// What the topics said so far: the highest version of each contribution record.
#[derive(Default)]
struct History(BTreeMap<String, RecordEvent>);

impl History {
    /// Writes `events` as one batch and notes them.
    async fn apply(&mut self, store: &Store, events: &[RecordEvent]) {
        let writes: Vec<RecordWrite> = events.iter().map(store_write).collect();
        store.apply(&writes).await.unwrap();
        self.note(events);
    }

    fn note(&mut self, events: &[RecordEvent]) {
        for e in events {
            if self
                .0
                .get(&e.record_id)
                .is_none_or(|l| l.version < e.version)
            {
                self.0.insert(e.record_id.clone(), e.clone());
            }
        }
    }

    /// The summary of `person`'s live contribution records.
    fn summary_of(&self, person: &str) -> ContributionSummary {
        ContributionSummary::from_periods(self.0.values().filter(
            |e| matches!(&e.payload, Some(Payload::ContributionPeriod(p)) if p.person_id == person),
        ))
    }
}

/// The contribution summary of `person` as a lookup reads it.
async fn stored_summary(store: &Store, person: &str) -> ContributionSummary {
    let read = SubjectRead {
        subject: subject(&person_subject(person)),
        types: vec![],
        contributions: true,
    };
    let mut data = store.read_subjects(&[read]).await.unwrap();
    assert!(data[0].records.is_empty(), "no record type was asked for");
    data.remove(0)
        .contributions
        .expect("the summary was asked for")
}

async fn summaries_match(store: &Store, history: &History, stage: &str) {
    for person in [alice(), bea()] {
        let expected = history.summary_of(&person);
        assert_eq!(stored_summary(store, &person).await, expected, "{stage}");
        assert_eq!(
            stored_summary(store, &person).await.view(),
            expected.view(),
            "{stage}"
        );
    }
}

/// A lookup gets the live records of the types it asks for, of each subject it names, and
/// the contribution summary only when it asks for it.
pub(super) async fn a_lookup_reads_only_the_asked_types_of_live_records(
    new: impl AsyncFn() -> Store,
) {
    let store = new().await;
    let (a, b) = (person_subject(&alice()), person_subject(&bea()));
    let (a, b) = (a.as_str(), b.as_str());
    store
        .apply(&[
            typed(RecordType::Identity, "I-1", 1, &[a]),
            typed(RecordType::HouseholdRegistration, "H-1", 4, &[a, "u:1"]),
            typed(RecordType::PropertyTitle, "T-1", 1, &["u:1", a]),
            typed(RecordType::ProvidentFundLoan, "L-1", 1, &[a, "u:1"]),
            typed(RecordType::ProvidentFundAccount, "F-1", 1, &[a]),
            store_write(&contribution_event("P-1", &alice(), "110105", 1, 1, 900)),
        ])
        .await
        .unwrap();
    // The flat is sold to B, the loan is deleted (settled and archived).
    store
        .apply(&[
            typed(RecordType::PropertyTitle, "T-1", 2, &["u:1", b]),
            typed_delete(RecordType::ProvidentFundLoan, "L-1", 2),
        ])
        .await
        .unwrap();
    let read = |subject_name: &str, types: &[RecordType], contributions| SubjectRead {
        subject: subject(subject_name),
        types: types.to_vec(),
        contributions,
    };
    let data = store
        .read_subjects(&[
            read(
                a,
                &[
                    RecordType::PropertyTitle,
                    RecordType::Identity,
                    RecordType::ProvidentFundLoan,
                    RecordType::HouseholdRegistration,
                    RecordType::Identity,
                ],
                false,
            ),
            read("u:1", &[RecordType::PropertyTitle], false),
            read(b, &[RecordType::PropertyTitle], true),
        ])
        .await
        .unwrap();
    let stored = |t, id: &str, version| StoredRecord {
        key: RecordKey::new(t, id),
        version,
        event: format!("{id}@{version}").into_bytes(),
    };
    assert_eq!(data.len(), 3);
    assert_eq!(
        data[0].records,
        [
            stored(RecordType::HouseholdRegistration, "H-1", 4),
            stored(RecordType::Identity, "I-1", 1),
        ],
        "asked types only, each record once; not the title sold away, not the deleted loan"
    );
    assert!(data[0].contributions.is_none(), "not asked for");
    assert_eq!(
        data[1].records,
        [stored(RecordType::PropertyTitle, "T-1", 2)]
    );
    assert_eq!(
        data[2].records,
        [stored(RecordType::PropertyTitle, "T-1", 2)]
    );
    assert_eq!(
        data[2].contributions,
        Some(ContributionSummary::default()),
        "asked for, and B has none"
    );
    // Everything is still listed for ListSubjectRecords, contributions included.
    let live = store.subject_records(&subject(a)).await.unwrap();
    assert_eq!(live.len(), 4, "identity, household, account, contribution");
    assert!(store.read_subjects(&[]).await.unwrap().is_empty());
}

/// The summary a lookup reads equals the summary of the person's live contribution
/// records, through corrections, moves between people, deletions, late versions, a batch
/// retried after step one, and a step two that lands after a newer version's.
pub(super) async fn the_contribution_summary_follows_every_correction(
    new: impl AsyncFn() -> Store,
) {
    let store = new().await;
    let mut history = History::default();
    let (a, b) = (alice(), bea());
    let beijing = "110105";
    let shanghai = "310104";
    let mut first = Vec::new();
    for month in 1..=8 {
        first.push(contribution_event(
            &format!("P-{month}"),
            &a,
            beijing,
            month,
            1,
            900,
        ));
        first.push(contribution_event(
            &format!("M-{month}"),
            &a,
            beijing,
            month,
            1,
            300,
        ));
    }
    // Recorded with nothing paid: a live record that counts no month.
    first.push(contribution_event("P-9", &a, beijing, 9, 1, 0));
    history.apply(&store, &first).await;
    summaries_match(&store, &history, "first load").await;
    assert_eq!(stored_summary(&store, &a).await.months_paid(), 8);

    // Month 2 was paid in Shanghai; month 3 was B's; month 4 never existed.
    history
        .apply(
            &store,
            &[
                contribution_event("P-2", &a, shanghai, 2, 2, 900),
                contribution_event("P-3", &b, beijing, 3, 2, 900),
                contribution_event("M-3", &b, beijing, 3, 2, 300),
                contribution_deletion("P-4", 3),
                contribution_deletion("M-4", 3),
            ],
        )
        .await;
    summaries_match(&store, &history, "corrections").await;
    assert_eq!(
        stored_summary(&store, &a).await.months_paid_by_region(),
        BTreeMap::from([(beijing.to_owned(), 6), (shanghai.to_owned(), 1)])
    );

    // Late older versions change nothing.
    let late = [
        contribution_event("P-2", &a, beijing, 2, 1, 900),
        contribution_event("P-3", &a, beijing, 3, 1, 900),
        contribution_event("P-4", &a, beijing, 4, 2, 900),
    ];
    let outcome = store
        .apply(&late.iter().map(store_write).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(outcome.stale, 3);
    summaries_match(&store, &history, "late versions").await;

    // A batch moving month 5 to Shanghai, then to B, fails after step one; its retry
    // converges.
    let batch = [
        contribution_event("P-5", &a, shanghai, 5, 2, 900),
        contribution_event("P-5", &b, shanghai, 5, 3, 900),
    ];
    let writes: Vec<RecordWrite> = batch.iter().map(store_write).collect();
    store.write_entries(&writes).await.unwrap();
    summaries_match(&store, &history, "step two did not run").await;
    store.apply(&writes).await.unwrap();
    history.note(&batch);
    summaries_match(&store, &history, "retried batch").await;

    // A replica writes the entry of month 6 moving to B and stalls; the version after it,
    // back to A in Shanghai, lands; then the stalled step two runs.
    let stalled_batch = [store_write(&contribution_event(
        "P-6", &b, beijing, 6, 2, 900,
    ))];
    let stalled = store.write_entries(&stalled_batch).await.unwrap();
    let newer = [contribution_event("P-6", &a, shanghai, 6, 3, 900)];
    history.apply(&store, &newer).await;
    store
        .write_subject_copies(&stalled_batch, &stalled)
        .await
        .unwrap();
    summaries_match(&store, &history, "a stalled step two").await;
    let summary_a = stored_summary(&store, &a).await;
    assert_eq!(
        summary_a.months_paid(),
        6,
        "months 1, 2, 5 (medical only), 6, 7, 8"
    );
    assert_eq!(stored_summary(&store, &b).await.months_paid(), 2);

    // The summary is read with the records it was asked with.
    let data = store
        .read_subjects(&[SubjectRead {
            subject: subject(&person_subject(&a)),
            types: vec![RecordType::ContributionPeriod],
            contributions: true,
        }])
        .await
        .unwrap();
    assert_eq!(
        data[0].records.len(),
        12,
        "P-1..9 and M-1..8 but P-3, M-3, P-4, M-4, P-5 moved or deleted"
    );
    assert_eq!(data[0].contributions.as_ref(), Some(&summary_a));
}
