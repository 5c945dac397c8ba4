//! Signatures of chain starts and checkpoints against certificates `govlink certs` issues.

use super::*;
use crate::proto::AbandonedChain;
use crate::tls::certs::CertsDir;

fn dir() -> CertsDir {
    let path = std::env::temp_dir().join(format!("govlink-sign-{}", uuid::Uuid::new_v4()));
    let dir = CertsDir::new(path);
    dir.init().unwrap();
    dir
}

fn signer(dir: &CertsDir) -> Signer {
    Signer::load(&dir.server().cert, &dir.server().key).unwrap()
}

fn now() -> prost_types::Timestamp {
    std::time::SystemTime::now().into()
}

fn start() -> ChainStart {
    ChainStart {
        writer: "resolver".into(),
        host: "host-1".into(),
        pid: 42,
        abandoned: vec![AbandonedChain {
            chain_id: "old".into(),
            sequence: Some(7),
            hash: vec![9; 32],
        }],
        ..ChainStart::default()
    }
}

fn signed_start(signer: &Signer, chain: &str, at: &prost_types::Timestamp) -> ChainStart {
    let mut start = start();
    signer.sign_start(chain, Some(at), &mut start).unwrap();
    start
}

#[test]
fn the_start_layout_is_the_documented_one() {
    let at = prost_types::Timestamp {
        seconds: 258,
        nanos: 3,
    };
    let mut start = start();
    start.certificates = vec![b"cert".to_vec()];
    start.signature_scheme = 0x0403;
    start.signature = b"ignored".to_vec();
    let mut expected = b"govlink.audit.v1 start\0".to_vec();
    expected.extend_from_slice(&[0, 0, 0, 2]);
    expected.extend_from_slice(b"c1");
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3]);
    expected.extend_from_slice(&[0, 0, 0, 8]);
    expected.extend_from_slice(b"resolver");
    expected.extend_from_slice(&[0, 0, 0, 6]);
    expected.extend_from_slice(b"host-1");
    expected.extend_from_slice(&[0, 0, 0, 42]);
    // No legacy declaration: an empty id, no sequence, an empty hash.
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
    expected.extend_from_slice(b"old");
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 32]);
    expected.extend_from_slice(&[9; 32]);
    expected.extend_from_slice(&[0, 0, 0, 1]);
    expected.extend_from_slice(&Sha256::digest(b"cert"));
    expected.extend_from_slice(&[0, 0, 0x04, 0x03]);
    assert_eq!(start_bytes("c1", Some(&at), &start), expected);
    // The signature itself is not covered; no time is a 0 byte.
    let mut unsigned = start.clone();
    unsigned.signature.clear();
    assert_eq!(start_bytes("c1", Some(&at), &unsigned), expected);
    assert_ne!(start_bytes("c1", None, &start), expected);
}

#[test]
fn the_checkpoint_layout_is_the_documented_one() {
    let checkpoint = AuditCheckpoint {
        chain_id: "c1".into(),
        sequence: 5,
        hash: vec![1, 2],
        at: Some(prost_types::Timestamp {
            seconds: -1,
            nanos: 0,
        }),
        closed: true,
        signature: b"ignored".to_vec(),
    };
    let mut expected = b"govlink.audit.v1 checkpoint\0".to_vec();
    expected.extend_from_slice(&[0, 0, 0, 2]);
    expected.extend_from_slice(b"c1");
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]);
    expected.extend_from_slice(&[0, 0, 0, 2, 1, 2]);
    expected.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expected.extend_from_slice(&[0, 0, 0, 0, 1]);
    assert_eq!(checkpoint_bytes(&checkpoint), expected);
}

#[test]
fn a_signed_start_and_its_checkpoints_verify_against_the_ca() {
    let dir = dir();
    let signer = signer(&dir);
    let at = now();
    let start = signed_start(&signer, "chain-1", &at);
    assert_eq!(
        start.signature_scheme, 0x0403,
        "ECDSA P-256 from certs init"
    );
    assert_eq!(start.certificates.len(), 1);
    let cas = TrustedCas::load(&dir.ca()).unwrap();
    let key = cas.check_start("chain-1", Some(&at), &start).unwrap();

    let mut checkpoint = AuditCheckpoint {
        chain_id: "chain-1".into(),
        sequence: 3,
        hash: vec![4; 32],
        at: Some(at),
        closed: false,
        signature: Vec::new(),
    };
    assert!(!key.signed(&checkpoint), "an unsigned checkpoint");
    signer.sign_checkpoint(&mut checkpoint).unwrap();
    assert!(key.signed(&checkpoint));
    // The same writer's key, whichever chain it signed.
    let other = signed_start(&signer, "chain-2", &at);
    let other_key = cas.check_start("chain-2", Some(&at), &other).unwrap();
    assert_eq!(key.fingerprint(), other_key.fingerprint());
}

#[test]
fn a_tampered_start_is_refused() {
    let dir = dir();
    let signer = signer(&dir);
    let cas = TrustedCas::load(&dir.ca()).unwrap();
    let at = now();
    let start = signed_start(&signer, "chain-1", &at);
    let refused = |chain: &str, at: &prost_types::Timestamp, start: &ChainStart| {
        cas.check_start(chain, Some(at), start).unwrap_err()
    };
    assert_eq!(refused("chain-2", &at, &start), StartRefusal::BadSignature);
    let later = prost_types::Timestamp {
        seconds: at.seconds + 1,
        ..at
    };
    assert_eq!(
        refused("chain-1", &later, &start),
        StartRefusal::BadSignature
    );
    let mut writer = start.clone();
    writer.writer = "cases".into();
    assert_eq!(refused("chain-1", &at, &writer), StartRefusal::BadSignature);
    let mut declares = start.clone();
    declares.abandoned.push(AbandonedChain {
        chain_id: "genuine".into(),
        sequence: None,
        hash: Vec::new(),
    });
    assert_eq!(
        refused("chain-1", &at, &declares),
        StartRefusal::BadSignature
    );
    let mut legacy = start.clone();
    legacy.abandoned_chain_id = "genuine".into();
    assert_eq!(refused("chain-1", &at, &legacy), StartRefusal::BadSignature);
    let mut scheme = start.clone();
    scheme.signature_scheme = 0x0503;
    assert_eq!(refused("chain-1", &at, &scheme), StartRefusal::BadSignature);
    let mut unknown = start.clone();
    unknown.signature_scheme = 0x0201;
    assert_eq!(
        refused("chain-1", &at, &unknown),
        StartRefusal::UnknownScheme(0x0201)
    );
    let mut unsigned = start.clone();
    unsigned.signature.clear();
    assert_eq!(refused("chain-1", &at, &unsigned), StartRefusal::Unsigned);
    assert_eq!(
        refused("chain-1", &at, &ChainStart::default()),
        StartRefusal::Unsigned
    );
}

#[test]
fn a_tampered_checkpoint_is_refused() {
    let dir = dir();
    let signer = signer(&dir);
    let at = now();
    let start = signed_start(&signer, "chain-1", &at);
    let key = TrustedCas::load(&dir.ca())
        .unwrap()
        .check_start("chain-1", Some(&at), &start)
        .unwrap();
    let mut checkpoint = AuditCheckpoint {
        chain_id: "chain-1".into(),
        sequence: 3,
        hash: vec![4; 32],
        at: Some(at),
        closed: false,
        signature: Vec::new(),
    };
    signer.sign_checkpoint(&mut checkpoint).unwrap();
    let changes: [fn(&mut AuditCheckpoint); 5] = [
        |c| c.chain_id = "chain-2".into(),
        |c| c.sequence += 1,
        |c| c.hash[0] ^= 1,
        |c| c.closed = true,
        |c| c.at = None,
    ];
    for change in changes {
        let mut tampered = checkpoint.clone();
        change(&mut tampered);
        assert!(!key.signed(&tampered), "{tampered:?}");
    }
    // Signed by another writer (another CA's certificate): not this chain's.
    let mut foreign = checkpoint.clone();
    signer_of_other_ca().sign_checkpoint(&mut foreign).unwrap();
    assert!(!key.signed(&foreign));
}

fn signer_of_other_ca() -> Signer {
    signer(&dir())
}

#[test]
fn a_start_signed_under_another_ca_or_outside_its_validity_is_untrusted() {
    let ours = dir();
    let theirs = dir();
    let at = now();
    // A complete, self-consistent start, signed with a key of a CA nobody configured.
    let forged = signed_start(&signer(&theirs), "chain-1", &at);
    let cas = TrustedCas::load(&ours.ca()).unwrap();
    assert_eq!(
        cas.check_start("chain-1", Some(&at), &forged),
        Err(StartRefusal::Untrusted("not issued by a trusted CA".into()))
    );
    // Its own CA trusts it.
    let theirs_cas = TrustedCas::load(&theirs.ca()).unwrap();
    assert!(
        theirs_cas
            .check_start("chain-1", Some(&at), &forged)
            .is_ok()
    );

    // Our own certificate, but a start dated long before it was issued.
    let long_ago = prost_types::Timestamp {
        seconds: 946_684_800,
        nanos: 0,
    };
    let backdated = signed_start(&signer(&ours), "chain-1", &long_ago);
    assert_eq!(
        cas.check_start("chain-1", Some(&long_ago), &backdated),
        Err(StartRefusal::Untrusted(
            "not valid yet when the chain started".into()
        ))
    );
    let mut timeless = start();
    signer(&ours)
        .sign_start("chain-1", None, &mut timeless)
        .unwrap();
    assert!(matches!(
        cas.check_start("chain-1", None, &timeless),
        Err(StartRefusal::Untrusted(_))
    ));
}

#[test]
fn a_key_of_another_certificate_is_refused_at_start() {
    let (a, b) = (dir(), dir());
    let certs = crate::tls::read_certs(&a.server().cert).unwrap();
    let key = crate::tls::read_key(&b.server().key).unwrap();
    let error = Signer::new(&certs, &key).unwrap_err();
    assert!(error.to_string().contains("does not belong"), "{error}");
}

#[test]
fn an_agency_systems_client_certificate_of_the_same_ca_cannot_sign_a_chain() {
    let dir = dir();
    let window = crate::identity::Requester::new(crate::proto::Agency::Housing, "transfer-window");
    let client = dir.client(&window);
    let at = now();
    let start = signed_start(&Signer::load(&client.cert, &client.key).unwrap(), "c", &at);
    assert_eq!(
        TrustedCas::load(&dir.ca())
            .unwrap()
            .check_start("c", Some(&at), &start),
        Err(StartRefusal::Untrusted("not issued for a server".into()))
    );
}
