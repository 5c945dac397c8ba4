//! The status page: one server-rendered HTML page that refreshes itself, no script.
//! Readiness, topics (messages, rate, materializer lag), publishes by agency, lookups
//! (rate, p99, decisions), calls refused (by limit, and for their client certificate),
//! dead letters by reason, and cases (open by kind, open and overdue steps by agency),
//! from the admin server's last two samples. Every figure has
//! an `id`, so a browser test (or a curious operator) can find it.

use std::fmt::Write as _;

use super::sample::{EVERY, Sample, Samples};

/// Renders the page of a process of `role`.
pub fn render(role: &str, samples: &Samples) -> String {
    let mut page = String::new();
    let refresh = EVERY.as_secs();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <title>govlink {role}</title><style>{STYLE}</style></head><body>\
         <h1>govlink <span id=\"role\">{role}</span></h1>",
        role = escape(role),
    );
    let Some(latest) = &samples.latest else {
        let _ = write!(
            page,
            "<p id=\"ready\">starting: the first sample is being taken</p></body></html>"
        );
        return page;
    };
    readiness(&mut page, latest);
    topics(&mut page, samples, latest);
    publishes(&mut page, samples, latest);
    lookups(&mut page, samples, latest);
    refused(&mut page, latest);
    dead_letters(&mut page, latest);
    cases(&mut page, latest);
    let _ = write!(
        page,
        "<p class=\"note\">Sampled every {refresh} s; this page reloads itself.</p></body></html>"
    );
    page
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
    table{border-collapse:collapse;margin-bottom:1.5em}\
    td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
    td:first-child,th:first-child{text-align:left}\
    .ok{color:#176117}.bad{color:#a31515;font-weight:bold}.note{color:#666}";

fn readiness(page: &mut String, latest: &Sample) {
    let (class, word) = if latest.ready() {
        ("ok", "ready")
    } else {
        ("bad", "not ready")
    };
    let _ = write!(
        page,
        "<p>Readiness: <span id=\"ready\" class=\"{class}\">{word}</span></p>\
         <table><tr><th>check</th><th>state</th></tr>"
    );
    for (name, result) in &latest.checks {
        let (class, text) = match result {
            Ok(()) => ("ok", "ok".to_owned()),
            Err(why) => ("bad", why.clone()),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{class}\">{}</td></tr>",
            escape(name),
            escape(&text)
        );
    }
    page.push_str("</table>");
}

fn topics(page: &mut String, samples: &Samples, latest: &Sample) {
    page.push_str(
        "<h2>Topics</h2><table><tr><th>topic</th><th>messages</th>\
         <th>per second</th><th>not yet materialized</th></tr>",
    );
    for (topic, messages) in &latest.ends {
        let rate = samples.rate(|s| s.ends.get(topic).copied().unwrap_or(0) as f64);
        let lag = latest
            .lag
            .get(topic)
            .map_or_else(|| "—".to_owned(), i64::to_string);
        let id = escape(topic);
        let _ = write!(
            page,
            "<tr><td>{id}</td><td id=\"messages-{id}\">{messages}</td>\
             <td id=\"rate-{id}\">{rate:.1}</td><td id=\"lag-{id}\">{lag}</td></tr>"
        );
    }
    page.push_str("</table>");
}

fn publishes(page: &mut String, samples: &Samples, latest: &Sample) {
    const NAME: &str = "govlink_publishes_total";
    let agencies = latest.series.label_values(NAME, "agency");
    if agencies.is_empty() {
        return;
    }
    page.push_str(
        "<h2>Publishes</h2><table><tr><th>agency</th><th>acknowledged</th>\
         <th>refused or failed</th><th>per second</th></tr>",
    );
    for agency in agencies {
        let label = format!("agency=\"{agency}\"");
        let ok = latest.series.sum(NAME, &[&label, "outcome=\"ok\""]);
        let all = latest.series.sum(NAME, &[&label]);
        let rate = samples.rate(|s| s.series.sum(NAME, &[&label]));
        let id = escape(&agency);
        let _ = write!(
            page,
            "<tr><td>{id}</td><td id=\"published-{id}\">{ok}</td>\
             <td id=\"publish-failures-{id}\">{}</td><td id=\"publish-rate-{id}\">{rate:.1}</td></tr>",
            all - ok
        );
    }
    page.push_str("</table>");
}

fn lookups(page: &mut String, samples: &Samples, latest: &Sample) {
    const NAME: &str = "govlink_lookups_total";
    let total = latest.series.sum(NAME, &[]);
    let allowed = latest.series.sum(NAME, &["decision=\"allowed\""]);
    let denied = latest.series.sum(NAME, &["decision=\"denied\""]);
    let rate = samples.rate(|s| s.series.sum(NAME, &[]));
    let p99 = p99_ms(samples, "govlink_lookup_duration_seconds")
        .map_or_else(|| "—".to_owned(), |ms| format!("{ms:.1}"));
    let _ = write!(
        page,
        "<h2>Lookups and checks</h2><table><tr><th>total</th><th>allowed</th>\
         <th>denied</th><th>per second</th><th>p99 ms</th></tr>\
         <tr><td id=\"lookups-total\">{total}</td><td id=\"lookups-allowed\">{allowed}</td>\
         <td id=\"lookups-denied\">{denied}</td><td id=\"lookups-per-second\">{rate:.1}</td>\
         <td id=\"lookup-p99-ms\">{p99}</td></tr></table>"
    );
}

/// Calls refused by a limit (by limit, all agencies together) and for their client
/// certificate (by reason); only the kinds that happened, then the totals.
fn refused(page: &mut String, latest: &Sample) {
    let s = &latest.series;
    page.push_str("<h2>Refused calls</h2><table><tr><th>why</th><th>count</th></tr>");
    for (name, label, prefix) in [
        ("govlink_limited_requests_total", "limit", "limited"),
        (
            "govlink_unauthenticated_calls_total",
            "reason",
            "unauthenticated",
        ),
    ] {
        for value in s.label_values(name, label) {
            let n = s.sum(name, &[&format!("{label}=\"{value}\"")]);
            if n > 0.0 {
                let id = escape(&value);
                let _ = write!(
                    page,
                    "<tr><td>{prefix}: {id}</td><td id=\"{prefix}-{id}\">{n}</td></tr>"
                );
            }
        }
        let _ = write!(
            page,
            "<tr><td>{prefix}, in all</td><td id=\"{prefix}-total\">{}</td></tr>",
            s.sum(name, &[])
        );
    }
    page.push_str("</table>");
}

fn dead_letters(page: &mut String, latest: &Sample) {
    const NAME: &str = "govlink_dead_letters_total";
    page.push_str("<h2>Dead letters</h2><table><tr><th>reason</th><th>count</th></tr>");
    for reason in latest.series.label_values(NAME, "reason") {
        let n = latest.series.sum(NAME, &[&format!("reason=\"{reason}\"")]);
        let id = escape(&reason);
        let _ = write!(
            page,
            "<tr><td>{id}</td><td id=\"dead-letters-{id}\">{n}</td></tr>"
        );
    }
    let _ = write!(
        page,
        "<tr><td>in all, by this process</td><td id=\"dead-letters-total\">{}</td></tr></table>",
        latest.series.sum(NAME, &[])
    );
}

fn cases(page: &mut String, latest: &Sample) {
    let s = &latest.series;
    let kinds = s.label_values("govlink_cases_open", "kind");
    if kinds.is_empty() {
        return;
    }
    page.push_str("<h2>Cases</h2><table><tr><th>kind</th><th>open</th></tr>");
    for kind in kinds {
        let n = s.sum("govlink_cases_open", &[&format!("kind=\"{kind}\"")]);
        let id = escape(&kind);
        let _ = write!(
            page,
            "<tr><td>{id}</td><td id=\"cases-open-{id}\">{n}</td></tr>"
        );
    }
    page.push_str(
        "</table><table><tr><th>agency</th><th>open steps</th><th>overdue steps</th></tr>",
    );
    for agency in s.label_values("govlink_case_steps_open", "agency") {
        let label = format!("agency=\"{agency}\"");
        let id = escape(&agency);
        let _ = write!(
            page,
            "<tr><td>{id}</td><td id=\"steps-open-{id}\">{}</td>\
             <td id=\"steps-overdue-{id}\">{}</td></tr>",
            s.sum("govlink_case_steps_open", &[&label]),
            s.sum("govlink_case_steps_overdue", &[&label])
        );
    }
    page.push_str("</table>");
}

/// The 99th percentile of histogram `name` over the last two samples (the bucket bound
/// it falls in), in ms; over everything counted when nothing was counted in between.
fn p99_ms(samples: &Samples, name: &str) -> Option<f64> {
    let latest = samples.latest.as_ref()?;
    let bucket = format!("{name}_bucket");
    let bounds = latest.series.label_values(&bucket, "le");
    // (bound, observations at or below it), by bound.
    let counts = |s: &Sample| -> Vec<(f64, f64)> {
        let mut counts: Vec<(f64, f64)> = bounds
            .iter()
            .map(|le| {
                let bound = le.parse().unwrap_or(f64::INFINITY);
                (bound, s.series.sum(&bucket, &[&format!("le=\"{le}\"")]))
            })
            .collect();
        counts.sort_by(|a, b| a.0.total_cmp(&b.0));
        counts
    };
    let mut window = counts(latest);
    if let Some(previous) = &samples.previous {
        let since: Vec<(f64, f64)> = window
            .iter()
            .zip(counts(previous))
            .map(|(&(bound, now), (_, then))| (bound, now - then))
            .collect();
        if since.last().is_some_and(|(_, n)| *n > 0.0) {
            window = since;
        }
    }
    let total = window.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let (bound, _) = window.iter().find(|(_, n)| *n >= 0.99 * total)?;
    Some(bound * 1000.0)
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::sample::Series;
    use super::*;
    use tokio::time::Instant;

    fn sample(text: &str, secs: u64, base: Instant) -> Sample {
        Sample {
            at: base + std::time::Duration::from_secs(secs),
            series: Series::parse(text),
            ends: [("govlink.records.housing.v1".to_owned(), 10 * secs as i64)].into(),
            lag: [("govlink.records.housing.v1".to_owned(), 2)].into(),
            checks: vec![
                ("redis", Ok(())),
                ("record store caught up", Err("rebuilding <1%>".into())),
            ],
        }
    }

    #[test]
    fn the_page_shows_each_figure_under_its_id_and_escapes_text() {
        let base = Instant::now();
        let before = "govlink_lookups_total{method=\"GetPersonProfile\",purpose=\"x\",decision=\"allowed\"} 10\n\
            govlink_lookup_duration_seconds_bucket{le=\"0.001\",method=\"GetPersonProfile\"} 5\n\
            govlink_lookup_duration_seconds_bucket{le=\"0.002\",method=\"GetPersonProfile\"} 10\n\
            govlink_lookup_duration_seconds_bucket{le=\"+Inf\",method=\"GetPersonProfile\"} 10\n";
        let after = "govlink_lookups_total{method=\"GetPersonProfile\",purpose=\"x\",decision=\"allowed\"} 60\n\
            govlink_lookups_total{method=\"GetPersonProfile\",purpose=\"x\",decision=\"denied\"} 5\n\
            govlink_lookup_duration_seconds_bucket{le=\"0.001\",method=\"GetPersonProfile\"} 5\n\
            govlink_lookup_duration_seconds_bucket{le=\"0.002\",method=\"GetPersonProfile\"} 10\n\
            govlink_lookup_duration_seconds_bucket{le=\"0.004\",method=\"GetPersonProfile\"} 65\n\
            govlink_lookup_duration_seconds_bucket{le=\"+Inf\",method=\"GetPersonProfile\"} 65\n\
            govlink_publishes_total{agency=\"housing\",outcome=\"ok\"} 7\n\
            govlink_publishes_total{agency=\"housing\",outcome=\"unavailable\"} 1\n\
            govlink_dead_letters_total{reason=\"invalid\"} 2\n\
            govlink_cases_open{kind=\"household-move\"} 3\n\
            govlink_case_steps_open{agency=\"public-security\"} 4\n\
            govlink_case_steps_overdue{agency=\"public-security\"} 1\n\
            govlink_limited_requests_total{limit=\"publish_rate\",agency=\"housing\"} 3\n\
            govlink_limited_requests_total{limit=\"publish_rate\",agency=\"public-security\"} 1\n\
            govlink_limited_requests_total{limit=\"batch_size\",agency=\"housing\"} 0\n\
            govlink_unauthenticated_calls_total{reason=\"revoked\"} 2\n\
            govlink_unauthenticated_calls_total{reason=\"expired\"} 0\n";
        let samples = Samples {
            previous: Some(sample(before, 0, base)),
            latest: Some(sample(after, 5, base)),
        };
        let page = render("dev", &samples);
        for shown in [
            "id=\"ready\" class=\"bad\">not ready<",
            "rebuilding &lt;1%&gt;",
            "id=\"messages-govlink.records.housing.v1\">50<",
            "id=\"rate-govlink.records.housing.v1\">10.0<",
            "id=\"lag-govlink.records.housing.v1\">2<",
            "id=\"published-housing\">7<",
            "id=\"publish-failures-housing\">1<",
            "id=\"lookups-total\">65<",
            "id=\"lookups-denied\">5<",
            "id=\"lookups-per-second\">11.0<",
            // 55 lookups in the window, all within 4 ms.
            "id=\"lookup-p99-ms\">4.0<",
            "id=\"dead-letters-invalid\">2<",
            "id=\"cases-open-household-move\">3<",
            "id=\"steps-overdue-public-security\">1<",
            "id=\"limited-publish_rate\">4<",
            "id=\"limited-total\">4<",
            "id=\"unauthenticated-revoked\">2<",
            "id=\"unauthenticated-total\">2<",
            "http-equiv=\"refresh\"",
        ] {
            assert!(page.contains(shown), "missing {shown}\n{page}");
        }
        assert!(!page.contains("<script"), "no script");
        assert!(
            !page.contains("limited-batch_size"),
            "kinds that did not happen: {page}"
        );
        assert!(!page.contains("unauthenticated-expired"), "{page}");
    }
}
