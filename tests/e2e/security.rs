//! Mutual TLS on real connections over loopback: who gets in, who is refused with which
//! status, and that a refused call publishes, materializes and answers nothing.

use std::path::Path;
use std::time::Duration;

use govlink::app::Role;
use govlink::identity::Requester;
use govlink::proto::{
    self, AccessDecision, Agency, GetPersonProfileRequest,
    housing_adapter_client::HousingAdapterClient,
    public_security_adapter_client::PublicSecurityAdapterClient,
};
use govlink::tls::certs::CertsDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

use crate::helpers::*;

/// The adapter of public security, secured with the certificates of `certs`.
async fn police_adapter(certs: &Path) -> TestApp {
    spawn_app_with(
        secured_settings(certs),
        Role::Adapter(Agency::PublicSecurity),
    )
    .await
}

fn household_request(version: u64) -> proto::PublishHouseholdRegistrationRequest {
    proto::PublishHouseholdRegistrationRequest {
        meta: meta(&unique("hukou"), version),
        record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
    }
}

/// A channel to `app` presenting the certificate and key of `issued`, trusting the app's
/// CA (`server_ca`).
async fn channel_with(
    app: &TestApp,
    server_ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(server_ca).unwrap()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("the tls handshake completes")
}

async fn published_to_police(app: &TestApp) -> usize {
    message_count(
        &app.topics.records(Agency::PublicSecurity),
        app.settings.partitions,
    )
    .await
}

/// Publishes through `channel` and expects `code`, with `says` in the message; then
/// checks that nothing more reached public security's record topic.
async fn refused(app: &TestApp, channel: Channel, code: Code, says: &str) {
    let before = published_to_police(app).await;
    let status = PublicSecurityAdapterClient::new(channel)
        .publish_household_registration(Request::new(household_request(1)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{status:?}");
    assert_eq!(
        published_to_police(app).await,
        before,
        "nothing was published"
    );
}

/// The count of calls `app` refused for `reason`.
async fn unauthenticated(app: &TestApp, reason: &str) -> f64 {
    let (_, text) = http_get(app.admin.expect("admin http"), "/metrics").await;
    metric(
        &text,
        &format!(r#"govlink_unauthenticated_calls_total{{reason="{reason}"}}"#),
    )
}

#[tokio::test]
async fn a_call_without_a_client_certificate_is_unauthenticated() {
    let certs = fresh_certs();
    let app = police_adapter(&certs).await;
    assert_eq!(unauthenticated(&app, "no_certificate").await, 0.0);
    let channel = channel_with(&app, &CertsDir::new(&certs).ca(), None).await;
    refused(
        &app,
        channel,
        Code::Unauthenticated,
        "no client certificate",
    )
    .await;
    assert_eq!(unauthenticated(&app, "no_certificate").await, 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_unauthenticated() {
    let (certs, strangers) = (fresh_certs(), fresh_certs());
    let app = police_adapter(&certs).await;
    let stranger =
        CertsDir::new(&strangers).client(&Requester::new(Agency::PublicSecurity, "records"));
    let channel = channel_with(
        &app,
        &CertsDir::new(&certs).ca(),
        Some((&stranger.cert, &stranger.key)),
    )
    .await;
    refused(
        &app,
        channel,
        Code::Unauthenticated,
        "client certificate not issued by a CA this server trusts",
    )
    .await;
    assert_eq!(unauthenticated(&app, "untrusted_issuer").await, 1.0);
    app.stop().await;
}

/// The real binary: an expired certificate is refused, and its log says why.
#[tokio::test]
async fn an_expired_certificate_is_refused_and_the_log_says_so() {
    let certs = fresh_certs();
    let dir = CertsDir::new(&certs);
    let police = Requester::new(Agency::PublicSecurity, "records");
    // The records system's certificate, replaced by one that expired yesterday.
    dir.issue(&police, Duration::ZERO).unwrap();
    let settings = secured_settings(&certs);
    let log = std::env::temp_dir().join(unique("adapter-log"));
    let port = crate::faults::free_port();
    let mut child = govlink_command(&settings, "adapter")
        .args(["--agency", "public-security"])
        .env("GOVLINK_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let channel = loop {
        // The expired certificate completes the handshake; its calls are refused.
        if let Ok(channel) = tls_channel_result(&addr, &certs).await {
            break channel;
        }
        assert!(tokio::time::Instant::now() < deadline, "the adapter serves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = PublicSecurityAdapterClient::new(channel)
        .publish_household_registration(Request::new(household_request(1)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("client certificate expired at "),
        "{status:?}"
    );
    let topic =
        govlink::kafka::Topics::new(settings.topic_prefix.clone()).records(Agency::PublicSecurity);
    assert_eq!(message_count(&topic, settings.partitions).await, 0);
    child.kill().unwrap();
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("call refused") && l.contains("client certificate expired")),
        "{logged}"
    );
}

async fn tls_channel_result(addr: &str, certs: &Path) -> anyhow::Result<Channel> {
    govlink::tls::client::ClientTls::new(certs)
        .connect(addr, &Requester::new(Agency::PublicSecurity, "records"))
        .await
}

/// A certificate revoked while the adapter runs: its next call is refused, over the
/// connection it already had and over a new one.
#[tokio::test]
async fn a_certificate_revoked_while_the_adapter_runs_is_refused_from_then_on() {
    let certs = fresh_certs();
    let app = police_adapter(&certs).await;
    let police = Requester::new(Agency::PublicSecurity, "records");
    let open = app.channel_as("public-security/records").await;
    let mut client = PublicSecurityAdapterClient::new(open.clone());
    client
        .publish_household_registration(Request::new(household_request(1)))
        .await
        .expect("a valid certificate publishes");
    let before = published_to_police(&app).await;
    assert!(before >= 1);

    let dir = CertsDir::new(&certs);
    dir.revoke(&dir.client(&police).cert).unwrap();
    // The adapter reads the CRL again within a second or two of it changing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        match client
            .publish_household_registration(Request::new(household_request(1)))
            .await
        {
            Err(status) => break status,
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still accepted 15 s after the revocation"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("client certificate revoked"),
        "{status:?}"
    );
    refused(
        &app,
        app.channel_as("public-security/records").await,
        Code::Unauthenticated,
        "client certificate revoked",
    )
    .await;
    assert_eq!(unauthenticated(&app, "revoked").await, 2.0);
    // Other certificates of the CA still authenticate: the window's is not revoked, only
    // not an integration, so the policy refuses it.
    let window =
        PublicSecurityAdapterClient::new(app.channel_as("public-security/move-window").await)
            .publish_household_registration(Request::new(household_request(1)))
            .await
            .expect_err("the window is no record system");
    assert_eq!(window.code(), Code::PermissionDenied, "{window:?}");
    app.stop().await;
}

/// Housing's valid certificate publishing through public security's adapter:
/// `PERMISSION_DENIED`, nothing published, and the attempt in the audit trail.
#[tokio::test]
async fn another_agencys_certificate_cannot_publish_and_the_attempt_is_audited() {
    let certs = fresh_certs();
    let app = police_adapter(&certs).await;
    let says = "only public-security's systems may publish through the public-security \
                adapter; the client certificate is housing/records's";
    refused(
        &app,
        app.channel_as("housing/records").await,
        Code::PermissionDenied,
        says,
    )
    .await;
    let entry = audited(&app, |a| a.purpose == "publish").await;
    assert_eq!(entry.requester_agency, Agency::Housing as i32);
    assert_eq!(entry.requester_service, "records");
    assert_eq!(
        entry.method,
        "PublicSecurityAdapter.PublishHouseholdRegistration"
    );
    assert_eq!(entry.decision, AccessDecision::Denied as i32);
    assert_eq!(entry.reason, says);
    // Its own agency's system publishes.
    PublicSecurityAdapterClient::new(app.channel_as("public-security/records").await)
        .publish_household_registration(Request::new(household_request(1)))
        .await
        .expect("public security publishes through its adapter");
    app.stop().await;
}

/// Lookups take the requester from the certificate, whatever the header claims: a
/// certificate outside the policy is denied (and audited), one inside is answered.
#[tokio::test]
async fn the_requester_is_the_certificates_and_the_policy_decides() {
    let certs = fresh_certs();
    let archive = Requester::new(Agency::Housing, "archive");
    CertsDir::new(&certs)
        .issue(&archive, Duration::from_secs(86_400))
        .unwrap();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let person = alice();
    let ack = HousingAdapterClient::new(app.channel_as("housing/records").await)
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta(&unique("title"), 1),
            record: Some(title(&[(&person, 10_000)])),
        })
        .await
        .expect("housing publishes through its adapter")
        .into_inner();
    let request = || {
        let mut request = Request::new(GetPersonProfileRequest {
            person_id: person.clone(),
            purpose: "property-transfer".into(),
            min_positions: vec![position(&ack)],
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(30));
        request
    };
    // The archive's certificate, claiming in the header to be the transfer window.
    let mut outside = resolver_as(
        app.channel_as("housing/archive").await,
        "housing/transfer-window",
        None,
    );
    let status = outside
        .get_person_profile(request())
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let denied = audited(&app, |a| a.requester_service == "archive").await;
    assert_eq!(denied.decision, AccessDecision::Denied as i32);

    let mut window = resolver_as(
        app.channel_as("housing/transfer-window").await,
        "public-security/citizen-portal",
        None,
    );
    let profile = window
        .get_person_profile(request())
        .await
        .expect("the window's grant answers")
        .into_inner();
    assert!(profile.property.is_some(), "{profile:?}");
    let allowed = audited(&app, |a| {
        a.requester_service == "transfer-window" && a.decision == AccessDecision::Allowed as i32
    })
    .await;
    assert_eq!(allowed.requester_agency, Agency::Housing as i32);

    // Raw records are their agency's own: public security's record system may not read
    // housing's title, housing's may.
    let get = || proto::GetRecordRequest {
        record_key: ack.record_key.clone(),
        min_positions: vec![position(&ack)],
    };
    let status = resolver_as(
        app.channel_as("public-security/records").await,
        "housing/records",
        None,
    )
    .get_record(get())
    .await
    .expect_err("another agency's raw record");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("raw records are their agency's own"),
        "{status:?}"
    );
    let title = resolver_as(
        app.channel_as("housing/records").await,
        "public-security/records",
        None,
    )
    .get_record(get())
    .await
    .expect("housing reads its own record")
    .into_inner();
    assert_eq!(title.record.unwrap().event_id, ack.event_id);
    app.stop().await;
}

/// The CA bundle is replaced while the adapter runs (a CA rotation): certificates of
/// the old CA are refused from then on, those of the new one accepted.
#[tokio::test]
async fn a_new_ca_bundle_is_taken_up_without_a_restart() {
    let (certs, next) = (fresh_certs(), fresh_certs());
    let app = police_adapter(&certs).await;
    let police = Requester::new(Agency::PublicSecurity, "records");
    let (old, new) = (CertsDir::new(&certs), CertsDir::new(&next));
    // The server keeps its certificate of the old CA: clients keep trusting that.
    let server_ca = std::env::temp_dir().join(unique("server-ca"));
    std::fs::copy(old.ca(), &server_ca).unwrap();
    let old_issued = old.client(&police);
    let new_issued = new.client(&police);
    let publish = |channel: Channel| async move {
        PublicSecurityAdapterClient::new(channel)
            .publish_household_registration(Request::new(household_request(1)))
            .await
    };
    let with_new = channel_with(&app, &server_ca, Some((&new_issued.cert, &new_issued.key))).await;
    assert_eq!(
        publish(with_new.clone()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // The client CA bundle and the CRL now are the new CA's, each file replaced whole.
    for (from, to) in [
        (new.ca(), app.settings.tls_client_ca.clone().unwrap()),
        (new.crl(), app.settings.tls_crl.clone().unwrap()),
    ] {
        let staged = format!("{to}.new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, &to).unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while publish(with_new.clone()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new CA is not trusted 15 s after the bundle changed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let with_old = channel_with(&app, &server_ca, Some((&old_issued.cert, &old_issued.key))).await;
    let status = publish(with_old).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .contains("not issued by a CA this server trusts")
    );
    app.stop().await;
}

/// The servers of an exchange do not start without TLS, nor with header identities.
#[test]
fn servers_refuse_to_start_without_tls_or_with_the_insecure_header() {
    let run = |subcommand: &[&str], insecure: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_govlink"));
        command
            .args(subcommand)
            // A broker nobody listens at: refused before any connection is tried.
            .env("GOVLINK_KAFKA", "127.0.0.1:9")
            .env("GOVLINK_ADMIN_ADDR", "")
            .env("RUST_BACKTRACE", "0");
        if insecure {
            command.env("GOVLINK_INSECURE_REQUESTER_HEADER", "true");
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{subcommand:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for subcommand in [
        &["resolver"][..],
        &["cases"],
        &["adapter", "--agency", "housing"],
    ] {
        let stderr = run(subcommand, false);
        assert!(
            stderr.contains("no TLS configured: set tls_cert"),
            "{stderr}"
        );
        let stderr = run(subcommand, true);
        assert!(
            stderr.contains("insecure_requester_header is for `govlink dev` and `demo` only"),
            "{stderr}"
        );
    }
}

/// Task completions are bound to the agency of the certificate: the provident fund's
/// record system cannot complete housing's task; housing's can.
#[tokio::test]
async fn another_agencys_certificate_cannot_complete_a_task() {
    use govlink::proto::{CompleteTaskRequest, StepKind, StepState};
    let certs = fresh_certs();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let cases_as = |channel: Channel, requester: &str| {
        govlink::proto::cases_client::CasesClient::with_interceptor(
            channel,
            govlink::identity::AsRequester::new(&Requester::parse(requester).unwrap(), None),
        )
    };
    let tasks_as = |channel: Channel, requester: &str| {
        govlink::proto::tasks_client::TasksClient::with_interceptor(
            channel,
            govlink::identity::AsRequester::new(&Requester::parse(requester).unwrap(), None),
        )
    };
    let window = app.channel_as("housing/transfer-window").await;
    let case = cases_as(window, "housing/transfer-window")
        .open_case(sale_between(
            &unique("sale"),
            UNIT,
            vec![alice()],
            vec![bea()],
        ))
        .await
        .expect("the window opens the case")
        .into_inner()
        .case
        .unwrap();
    let filing = case
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::SaleContractFiled)
        .unwrap();
    assert_eq!(filing.state(), StepState::Open);
    let complete = || CompleteTaskRequest {
        task_id: filing.task_id.clone(),
        outcome: "filed".into(),
        note: String::new(),
    };
    // The header claims housing's system; the certificate is the provident fund's.
    let fund = app.channel_as("provident-fund/records").await;
    let status = tasks_as(fund, "housing/records")
        .complete(complete())
        .await
        .expect_err("another agency's task");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("the task belongs to housing"),
        "{status:?}"
    );
    let refused = audited(&app, |a| {
        a.method == "Tasks.Complete" && a.decision == AccessDecision::Denied as i32
    })
    .await;
    assert_eq!(refused.requester_agency, Agency::ProvidentFund as i32);

    let desk = app.channel_as("housing/records").await;
    let done = tasks_as(desk, "housing/records")
        .complete(complete())
        .await
        .expect("housing completes its own task")
        .into_inner();
    assert_eq!(done.state(), StepState::Done);
    app.stop().await;
}
