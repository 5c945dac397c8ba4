//! The `govlink policy check` table: one row per grant, who may see what, then the
//! integrations (the agencies' record systems).

use std::fmt::Write;

use super::{Field, Section};
use super::{Grant, Integration};

const HEADER: [&str; 5] = ["requester", "purpose", "subject", "sections", "unmasked"];

/// Renders grants as an aligned plain-text table, and the integrations under it.
pub(super) fn render(grants: &[Grant], integrations: &[Integration]) -> String {
    let rows: Vec<[String; 5]> = grants.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    line(&mut out, &HEADER.map(str::to_owned), &widths);
    line(&mut out, &widths.map(|w| "-".repeat(w)), &widths);
    for row in &rows {
        line(&mut out, row, &widths);
    }
    if rows.is_empty() {
        out.push_str("(no grants: every lookup is denied)\n");
    }
    out.push_str("\nintegrations (publish, raw reads, tasks of their agency):\n");
    for integration in integrations {
        let _ = writeln!(out, "  {}", integration.requester);
    }
    if integrations.is_empty() {
        out.push_str("  (none: no adapter accepts a publish, no task is carried out)\n");
    }
    out
}

fn line(out: &mut String, cells: &[String; 5], widths: &[usize; 5]) {
    let mut text = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        let _ = write!(text, "{cell:<width$}");
    }
    out.push_str(text.trim_end());
    out.push('\n');
}

fn row(grant: &Grant) -> [String; 5] {
    let sections: Vec<String> = Section::ALL
        .into_iter()
        .filter(|s| grant.fields.has_section(*s))
        .map(|s| {
            if grant.fields.has_whole_section(s) {
                s.name().to_owned()
            } else {
                let fields: Vec<&str> = s
                    .fields()
                    .filter(|f| grant.fields.contains(*f))
                    .map(Field::name)
                    .collect();
                format!("{}({})", s.name(), fields.join(" "))
            }
        })
        .collect();
    let unmasked: Vec<&str> = grant.unmasked.iter().map(|k| k.name()).collect();
    [
        grant.requester_pattern(),
        grant.purpose.to_string(),
        if grant.self_only { "self" } else { "any" }.to_owned(),
        sections.join(", "),
        if unmasked.is_empty() {
            "none".to_owned()
        } else {
            unmasked.join(", ")
        },
    ]
}
