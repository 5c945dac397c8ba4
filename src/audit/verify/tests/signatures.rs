//! Who wrote each chain: starts and checkpoints signed by a writer whose certificate
//! chains to the CAs pass; forged, unsigned and foreign-signed ones do not.

use super::*;
use crate::audit::signing::{Signer, TrustedCas};
use crate::tls::certs::CertsDir;

fn certs() -> CertsDir {
    let path = std::env::temp_dir().join(format!("govlink-verify-{}", uuid::Uuid::new_v4()));
    let dir = CertsDir::new(path);
    dir.init().unwrap();
    dir
}

fn signer(dir: &CertsDir) -> Signer {
    Signer::load(&dir.server().cert, &dir.server().key).unwrap()
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A chain `id` written now by `signer` (unsigned without one): a start declaring
/// `abandoned`, then `accesses` accesses.
fn written_by(
    signer: Option<&Signer>,
    id: &str,
    accesses: u64,
    abandoned: &[Abandoned],
) -> Vec<AuditEntry> {
    let mut tip = Tip::new(id.into());
    let mut entries = Vec::new();
    let t0 = now_s();
    for i in 0..=accesses {
        let at = at(t0 + i as i64);
        let kind = if i == 0 {
            let Kind::Start(mut first) = start(abandoned) else {
                unreachable!()
            };
            if let Some(signer) = signer {
                signer.sign_start(id, at.as_ref(), &mut first).unwrap();
            }
            Kind::Start(first)
        } else {
            access(&format!("p{i}"))
        };
        let entry = tip.next_entry(&AuditBody {
            at,
            kind: Some(kind),
        });
        tip.advance(&entry);
        entries.push(entry);
    }
    entries
}

/// The checkpoint of `entries` at `seq`, signed by `signer` if given.
fn signed_checkpoint(
    signer: Option<&Signer>,
    entries: &[AuditEntry],
    seq: u64,
    closed: bool,
) -> AuditCheckpoint {
    let mut c = checkpoint(entries, seq, closed);
    if let Some(signer) = signer {
        signer.sign_checkpoint(&mut c).unwrap();
    }
    c
}

fn verify_signed(
    cas: &CertsDir,
    allow_unsigned: bool,
    entries: &[AuditEntry],
    checkpoints: &[AuditCheckpoint],
) -> Report {
    let trusted = TrustedCas::load(&cas.ca()).unwrap();
    let mut verifier = Verifier::new(None).with_signatures(trusted, allow_unsigned);
    for (i, c) in checkpoints.iter().enumerate() {
        verifier.add_checkpoint(location(i), &c.encode_to_vec());
    }
    for (i, e) in entries.iter().enumerate() {
        verifier.add_entry(location(i), &e.encode_to_vec());
    }
    verifier.finish()
}

fn status<'r>(report: &'r Report, id: &str) -> &'r ChainReport {
    report.chains.iter().find(|c| c.chain_id == id).unwrap()
}

#[test]
fn a_signed_chain_with_signed_checkpoints_verifies() {
    let dir = certs();
    let writer = signer(&dir);
    let entries = written_by(Some(&writer), "genuine", 3, &[]);
    let closed = signed_checkpoint(Some(&writer), &entries, 3, true);
    let report = verify_signed(&dir, false, &entries, &[closed]);
    let chain = status(&report, "genuine");
    assert_eq!(chain.status, ChainStatus::Closed);
    assert_eq!(chain.signature, Signature::Verified);
    assert!(report.is_clean());
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains(" signature=verified: closed, verified")
    );
}

#[test]
fn a_forged_chain_fails_naming_why_and_the_genuine_one_still_verifies() {
    let ours = certs();
    let writer = signer(&ours);
    let mut entries = written_by(Some(&writer), "genuine", 2, &[]);
    let mut checkpoints = vec![signed_checkpoint(Some(&writer), &entries, 2, true)];
    // Complete and self-consistent: signed with a key of a CA nobody configured.
    let forger = signer(&certs());
    let forged = written_by(Some(&forger), "forged", 2, &[]);
    checkpoints.push(signed_checkpoint(Some(&forger), &forged, 2, true));
    // And one without any signature.
    let unsigned = written_by(None, "unsigned", 2, &[]);
    checkpoints.push(signed_checkpoint(None, &unsigned, 2, true));
    entries.extend(forged);
    entries.extend(unsigned);

    let report = verify_signed(&ours, false, &entries, &checkpoints);
    assert_eq!(status(&report, "genuine").status, ChainStatus::Closed);
    let ChainStatus::Failed(Problem::Unverified { why }) = &status(&report, "forged").status else {
        panic!("{report:?}")
    };
    assert!(matches!(why, StartRefusal::Untrusted(_)), "{why:?}");
    assert_eq!(status(&report, "forged").signature, Signature::Refused);
    assert_eq!(
        status(&report, "unsigned").status,
        ChainStatus::Failed(Problem::Unverified {
            why: StartRefusal::Unsigned
        })
    );
    assert_eq!(report.failed(), 2);
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("chain forged writer=resolver entries=3 last_seq=2 head=")
            && text.contains(
                " signature=refused: FAILED: not written by a trusted writer: its start's certificate is not trusted"
            ),
        "{text}"
    );

    // A trail written without TLS passes when told so, marked unsigned.
    let report = verify_signed(&ours, true, &entries, &checkpoints);
    assert_eq!(status(&report, "unsigned").status, ChainStatus::Closed);
    assert_eq!(status(&report, "unsigned").signature, Signature::Unsigned);
    assert_eq!(report.failed(), 1, "the forged one still fails");
}

#[test]
fn checkpoints_not_signed_by_the_chains_writer_are_ignored_and_reported() {
    let dir = certs();
    let writer = signer(&dir);
    let entries = written_by(Some(&writer), "genuine", 3, &[]);
    let genuine = signed_checkpoint(Some(&writer), &entries, 3, true);
    // A checkpoint claiming more than the chain has, unsigned or signed by someone else,
    // would make the chain look cut off.
    let mut claims_more = genuine.clone();
    claims_more.sequence = 9;
    let mut by_another = claims_more.clone();
    signer(&certs()).sign_checkpoint(&mut by_another).unwrap();
    let mut tampered = genuine.clone();
    tampered.closed = false;
    let report = verify_signed(
        &dir,
        false,
        &entries,
        &[genuine, claims_more, by_another, tampered],
    );
    assert_eq!(status(&report, "genuine").status, ChainStatus::Closed);
    assert_eq!(report.forged_checkpoints, (3, Some("genuine".into())));
    assert!(!report.is_clean());
}

#[test]
fn only_a_verified_start_of_the_same_writer_declares_a_chain_abandoned() {
    let dir = certs();
    let writer = signer(&dir);
    let mut genuine = written_by(Some(&writer), "genuine", 5, &[]);
    // Entry 4 is missing: only a declaration of abandonment at seq 3 would excuse it.
    genuine.remove(4);
    let head = Hash::try_from(genuine[3].hash.as_slice()).unwrap();
    let declared: [Abandoned; 1] = [("genuine", Some(3), Some(head))];
    for declarer in [None, Some(signer(&certs()))] {
        let mut entries = genuine.clone();
        entries.extend(written_by(declarer.as_ref(), "declarer", 1, &declared));
        let report = verify_signed(&dir, true, &entries, &[]);
        assert_eq!(
            status(&report, "genuine").status,
            ChainStatus::Failed(Problem::Missing { seq: 4 }),
            "a declaration by {declarer:?} does not count"
        );
    }
    let mut entries = genuine.clone();
    entries.extend(written_by(Some(&writer), "successor", 1, &declared));
    let report = verify_signed(&dir, false, &entries, &[]);
    assert!(
        matches!(
            status(&report, "genuine").status,
            ChainStatus::Abandoned {
                acknowledged_up_to: Some(3),
                ..
            }
        ),
        "{report:?}"
    );
}
