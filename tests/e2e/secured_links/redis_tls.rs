//! The resolver's Redis over TLS (`rediss://`, the test's CA in `redis_ca`) as an ACL
//! user, on a redis-server that has no plain port and no default user.

use std::time::Duration;

use govlink::app::{App, Role};
use govlink::redis_link::RedisLink;
use govlink::secret::Secret;
use tokio::time::Instant;

use super::fixtures::{Pki, TlsRedis, password};
use super::round_trip;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolver_keeps_its_records_in_redis_over_tls_as_an_acl_user() {
    let pki = Pki::new();
    let secret = password("redis");
    let redis = TlsRedis::start(&pki, "govlink", &secret).await;
    let mut settings = test_settings();
    settings.redis = Some(redis.url());
    settings.redis_ca = Some(pki.ca.display().to_string());
    settings.redis_username = Some("govlink".into());
    settings.redis_password = Some(Secret::new(&secret));
    let app = spawn_app_with(settings.clone(), Role::Dev).await;
    round_trip(&app.channel, "tls-1").await;

    // The record is in that Redis, read back over TLS as the same user.
    let mut conn = redis
        .link(&pki, "govlink", &secret)
        .client()
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let record: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!(
            "{}rec:household_registration:tls-1",
            settings.redis_prefix
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(record.is_some(), "the record is in the TLS Redis");
    app.stop().await;

    // The CA is what lets the link trust the server: without it (the system's roots) the
    // handshake fails, so the test's TLS was verified, not skipped.
    let untrusted = RedisLink::new(redis.url()).with_login(
        None,
        Some("govlink".into()),
        Some(Secret::new(&secret)),
    );
    let Err(err) = untrusted
        .client()
        .unwrap()
        .get_multiplexed_async_connection()
        .await
    else {
        panic!("a server certificate of an unknown issuer was accepted");
    };
    let err = err.to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_stops_start_up_naming_the_problem_not_the_password() {
    let pki = Pki::new();
    let secret = password("redis");
    let redis = TlsRedis::start(&pki, "govlink", &secret).await;
    let wrong = password("wrong");
    let mut settings = test_settings();
    settings.redis = Some(redis.url());
    settings.redis_ca = Some(pki.ca.display().to_string());
    settings.redis_username = Some("govlink".into());
    settings.redis_password = Some(Secret::new(&wrong));
    let started = Instant::now();
    let Err(err) = App::build(&settings, Role::Resolver).await else {
        panic!("the resolver started with a wrong Redis password");
    };
    let err = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed after {:?}",
        started.elapsed()
    );
    assert!(err.contains("Password authentication failed"), "{err}");
    assert!(!err.contains(&wrong) && !err.contains(&secret), "{err}");
}
