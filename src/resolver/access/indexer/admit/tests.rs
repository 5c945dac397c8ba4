//! Admission against chains signed with certificates `govlink certs` issues.

use super::*;
use crate::audit::{Signer, Tip};
use crate::proto::{ChainStart, DataAccess};
use crate::tls::certs::CertsDir;

fn certs() -> CertsDir {
    let path = std::env::temp_dir().join(format!("govlink-admit-{}", uuid::Uuid::new_v4()));
    let dir = CertsDir::new(path);
    dir.init().unwrap();
    dir
}

fn signer(dir: &CertsDir) -> Signer {
    Signer::load(&dir.server().cert, &dir.server().key).unwrap()
}

/// A chain `id` (signed by `signer`, if given) of a start and `accesses` accesses.
fn chain(signer: Option<&Signer>, id: &str, accesses: usize) -> Vec<(AuditEntry, AuditBody)> {
    let mut tip = Tip::new(id.into());
    (0..=accesses)
        .map(|i| {
            let at = Some(std::time::SystemTime::now().into());
            let kind = if i == 0 {
                let mut start = ChainStart::default();
                if let Some(signer) = signer {
                    signer.sign_start(id, at.as_ref(), &mut start).unwrap();
                }
                Kind::Start(start)
            } else {
                Kind::Access(DataAccess::default())
            };
            let body = AuditBody {
                at,
                kind: Some(kind),
            };
            let entry = tip.next_entry(&body);
            tip.advance(&entry);
            (entry, body)
        })
        .collect()
}

fn verdicts(
    heads: &mut Heads,
    entries: &[(AuditEntry, AuditBody)],
    trust: &ChainTrust,
) -> Vec<Verdict> {
    entries
        .iter()
        .map(|(e, b)| heads.admit(e, b, trust))
        .collect()
}

fn reason(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Left { reason, .. } => reason,
        Verdict::Index => "index",
        Verdict::Replayed => "replayed",
    }
}

#[test]
fn a_signed_chain_is_indexed_entry_by_entry_and_replays_are_skipped() {
    let dir = certs();
    let trust = ChainTrust::Signed(TrustedCas::load(&dir.ca()).unwrap());
    let entries = chain(Some(&signer(&dir)), "genuine", 3);
    let mut heads = Heads::new(HashMap::new());
    assert_eq!(
        verdicts(&mut heads, &entries, &trust),
        vec![Verdict::Index; 4]
    );
    let moved = heads.moved();
    let last = Hash::try_from(entries[3].0.hash.as_slice()).unwrap();
    assert_eq!(moved, vec![("genuine".to_owned(), (3, last))]);

    // After a restart, from the saved head: a replay is skipped, the next one links.
    let saved = HashMap::from([(
        "genuine".to_owned(),
        Some((2, Hash::try_from(entries[2].0.hash.as_slice()).unwrap())),
    )]);
    let mut heads = Heads::new(saved);
    let seen: Vec<&str> = verdicts(&mut heads, &entries, &trust)
        .iter()
        .map(reason)
        .collect();
    assert_eq!(seen, ["replayed", "replayed", "replayed", "index"]);
}

#[test]
fn chains_not_signed_under_the_cas_are_left_out_whole() {
    let ours = certs();
    let trust = ChainTrust::Signed(TrustedCas::load(&ours.ca()).unwrap());
    for forged in [
        chain(None, "unsigned", 2),
        chain(Some(&signer(&certs())), "foreign", 2),
    ] {
        let mut heads = Heads::new(HashMap::new());
        let seen: Vec<&str> = verdicts(&mut heads, &forged, &trust)
            .iter()
            .map(reason)
            .collect();
        assert_eq!(seen, ["unverified_start", "unknown_chain", "unknown_chain"]);
        assert!(heads.moved().is_empty());
    }
    // Without TLS there is nothing to check a signature against: linking is what counts.
    let mut heads = Heads::new(HashMap::new());
    let unsigned = chain(None, "unsigned", 2);
    assert_eq!(
        verdicts(&mut heads, &unsigned, &ChainTrust::Unsigned),
        vec![Verdict::Index; 3]
    );
}

#[test]
fn entries_that_do_not_link_to_the_verified_head_are_left_out() {
    let dir = certs();
    let trust = ChainTrust::Signed(TrustedCas::load(&dir.ca()).unwrap());
    let entries = chain(Some(&signer(&dir)), "genuine", 3);
    // Entries appended to a chain id whose start is not in the trail.
    let mut heads = Heads::new(HashMap::new());
    let seen: Vec<&str> = verdicts(&mut heads, &entries[1..], &trust)
        .iter()
        .map(reason)
        .collect();
    assert_eq!(seen, ["unknown_chain"; 3]);
    // A gap: entry 2 after the start.
    let mut heads = Heads::new(HashMap::new());
    let gapped = [entries[0].clone(), entries[2].clone()];
    let seen: Vec<&str> = verdicts(&mut heads, &gapped, &trust)
        .iter()
        .map(reason)
        .collect();
    assert_eq!(seen, ["index", "unlinked"]);
    // The right sequence with another previous hash (a rewritten predecessor).
    let mut heads = Heads::new(HashMap::new());
    let other = chain(Some(&signer(&dir)), "genuine", 3);
    let spliced = [entries[0].clone(), other[1].clone()];
    let seen: Vec<&str> = verdicts(&mut heads, &spliced, &trust)
        .iter()
        .map(reason)
        .collect();
    assert_eq!(seen, ["index", "unlinked"]);
}

#[test]
fn a_process_whose_own_chains_its_ca_bundle_refuses_does_not_start() {
    let (ours, other) = (certs(), certs());
    let files = |ca: &CertsDir| crate::tls::TlsFiles {
        cert: ours.server().cert,
        key: ours.server().key,
        client_ca: ca.ca(),
        crl: None,
    };
    assert!(matches!(
        ChainTrust::of_tls(Some(&files(&ours))),
        Ok(ChainTrust::Signed(_))
    ));
    let error = ChainTrust::of_tls(Some(&files(&other))).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("own audit chains would not be indexed"),
        "{error}"
    );
    assert!(matches!(ChainTrust::of_tls(None), Ok(ChainTrust::Unsigned)));
}
