//! Forged chains: anyone who can write to the audit topic can write a complete,
//! self-consistent chain (a start, accesses, a closed checkpoint). Against a resolver
//! running with TLS, such a chain fails `govlink audit verify`, naming it and why, and
//! never reaches the citizen's `ListDataAccesses`, while the genuine chains verify and
//! the genuine accesses are listed.

use std::time::SystemTime;

use govlink::app::Role;
use govlink::audit::{GENESIS, Hash, Signer, entry_hash};
use govlink::proto::{ChainStart, PersonAccess};
use govlink::tls::certs::CertsDir;
use rdkafka::Message as _;

use super::*;
use crate::lookups::{PORTAL, WINDOW, profile};

/// A chain `id` of a start (signed by `signer`, if given) and one allowed access to
/// `person`'s data for `purpose`, and the chain's closed checkpoint (signed alike): what a
/// resolver would write.
fn forged_chain(
    id: &str,
    person: &str,
    purpose: &str,
    signer: Option<&Signer>,
) -> (Vec<Vec<u8>>, AuditCheckpoint) {
    let at: Option<prost_types::Timestamp> = Some(SystemTime::now().into());
    let mut start = ChainStart {
        writer: "resolver".into(),
        host: "resolver-0".into(),
        pid: 1,
        ..ChainStart::default()
    };
    if let Some(signer) = signer {
        signer.sign_start(id, at.as_ref(), &mut start).unwrap();
    }
    let bodies = [
        AuditBody {
            at,
            kind: Some(Kind::Start(start)),
        },
        AuditBody {
            at,
            kind: Some(Kind::Access(access(
                purpose,
                &[person.to_owned()],
                AccessDecision::Allowed,
            ))),
        },
    ];
    let mut previous: Hash = GENESIS;
    let mut entries = Vec::new();
    for (sequence, body) in bodies.iter().enumerate() {
        let body = body.encode_to_vec();
        let hash = entry_hash(id, sequence as u64, &previous, &body);
        entries.push(
            AuditEntry {
                chain_id: id.into(),
                sequence: sequence as u64,
                previous_hash: previous.to_vec(),
                hash: hash.to_vec(),
                body,
            }
            .encode_to_vec(),
        );
        previous = hash;
    }
    let mut checkpoint = AuditCheckpoint {
        chain_id: id.into(),
        sequence: 1,
        hash: previous.to_vec(),
        at,
        closed: true,
        signature: Vec::new(),
    };
    if let Some(signer) = signer {
        signer.sign_checkpoint(&mut checkpoint).unwrap();
    }
    (entries, checkpoint)
}

/// The partition of the audit topic holding the access `purpose` (waiting for it).
async fn partition_of(topic: &str, purpose: &str) -> i32 {
    let consumer = from_beginning(topic, PARTITIONS);
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the access is in the trail within 30 s")
            .unwrap();
        let entry = AuditEntry::decode(m.payload().unwrap_or_default()).unwrap();
        let body = AuditBody::decode(entry.body.as_slice()).unwrap();
        if let Some(Kind::Access(a)) = body.kind
            && a.purpose == purpose
        {
            return m.partition();
        }
    }
}

#[tokio::test]
async fn a_forged_chain_fails_verify_and_never_reaches_the_citizens_list() {
    let certs = fresh_certs();
    let settings = secured_settings(&certs);
    let topics = audit_topics(&settings).await;
    let app = spawn_app_with(settings, Role::Dev).await;
    let person = alice();
    let mut window = resolver_as(app.channel_as(WINDOW).await, WINDOW, None);
    // Allowed or refused, every lookup is an access in the trail.
    let _ = profile(&mut window, &person, "property-transfer", &[]).await;
    // The forged chains go into the partition of the genuine one, between two genuine
    // accesses: once the second is listed, the indexer has read them.
    let partition = partition_of(&topics.audit(), "property-transfer").await;

    // The forger runs a CA of their own.
    let forger_dir = CertsDir::new(fresh_certs());
    let forger = Signer::load(&forger_dir.server().cert, &forger_dir.server().key).unwrap();
    let unsigned_id = unique("forged-unsigned");
    let foreign_id = unique("forged-foreign");
    for (id, purpose, signer) in [
        (&unsigned_id, "forged-unsigned", None),
        (&foreign_id, "forged-foreign", Some(&forger)),
    ] {
        let (entries, checkpoint) = forged_chain(id, &person, purpose, signer);
        send_raw(
            &topics.audit_checkpoints(),
            id,
            &checkpoint.encode_to_vec(),
            None,
        )
        .await;
        for entry in entries {
            send_raw(&topics.audit(), id, &entry, Some(partition)).await;
        }
    }
    let _ = profile(&mut window, &person, "pension-transfer", &[]).await;
    let listed = listed_until(&app, &person, "pension-transfer").await;
    let purposes: Vec<&str> = listed.iter().map(|a| a.purpose.as_str()).collect();
    assert!(purposes.contains(&"property-transfer"), "{purposes:?}");
    assert!(
        !purposes.iter().any(|p| p.starts_with("forged")),
        "a forged access is listed: {purposes:?}"
    );
    let (_, metrics) = http_get(app.admin.unwrap(), "/metrics").await;
    assert!(
        metric(
            &metrics,
            "govlink_audit_unindexed_entries_total{reason=\"unverified_start\"}"
        ) >= 2.0,
        "{metrics}"
    );
    let settings = app.settings.clone();
    app.stop().await;

    let (ok, out) = verify(&settings, &[]);
    println!("{out}");
    assert!(!ok, "a forged chain passed verification:\n{out}");
    for (id, why) in [
        (&unsigned_id, "its start is not signed"),
        (
            &foreign_id,
            "its start's certificate is not trusted: not issued by a trusted CA",
        ),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("chain {id} ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{out}"));
        assert!(
            line.contains("FAILED: not written by a trusted writer: ") && line.contains(why),
            "{line}"
        );
    }
    let genuine: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("chain ") && !l.contains("forged-"))
        .collect();
    assert!(!genuine.is_empty(), "{out}");
    for line in genuine {
        assert!(
            line.contains(" signature=verified: closed, verified"),
            "a genuine chain: {line}"
        );
    }
}

/// `person`'s accesses as the citizen portal lists them, once one for `purpose` is there.
async fn listed_until(app: &TestApp, person: &str, purpose: &str) -> Vec<PersonAccess> {
    let mut portal = resolver_as(app.channel_as(PORTAL).await, PORTAL, Some(person));
    crate::accesses::listed_until(&mut portal, person, |seen| {
        seen.iter().any(|a| a.purpose == purpose)
    })
    .await
}
