//! Reading a policy file: TOML into spanned raw structs, then validation into grants,
//! so that every problem is reported with the line it is on.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use toml::Spanned;

use super::{
    Field, FieldSet, Grant, Integration, MaskKind, MaskKindSet, PolicyError, Purpose, Section,
};
use crate::identity::{Requester, check_slug};
use crate::proto::Agency;
use crate::records::{agency_from_slug, agency_slugs};
use crate::toml_lines::Lines;

/// The file as written; `Spanned` keeps where each value is for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    /// `[[grant]]` tables; none at all is a valid policy that denies everything.
    #[serde(default)]
    grant: Vec<Spanned<RawGrant>>,
    /// `[[integration]]` tables: the agencies' record systems.
    #[serde(default)]
    integration: Vec<Spanned<RawIntegration>>,
}

/// One `[[integration]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    agency: Spanned<String>,
    service: Spanned<String>,
}

/// One `[[grant]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGrant {
    agency: Spanned<String>,
    service: Spanned<String>,
    purpose: Spanned<String>,
    sections: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    unmasked: Vec<Spanned<String>>,
    #[serde(default)]
    self_only: bool,
}

/// Parses and validates a policy file's text into its grants and integrations, each in
/// file order.
pub(super) fn parse(text: &str) -> Result<(Vec<Grant>, Vec<Integration>), PolicyError> {
    let lines = Lines(text);
    let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Syntax {
        line: e.span().map_or(1, |s| lines.at(s.start)),
        // The message alone: toml's Display repeats the file excerpt on several lines.
        message: e.message().trim_end().to_owned(),
    })?;
    let mut grants: Vec<Grant> = Vec::with_capacity(raw.grant.len());
    let mut seen: HashMap<(Agency, Option<String>, Purpose), usize> = HashMap::new();
    for raw_grant in &raw.grant {
        let line = lines.of(raw_grant);
        let grant = grant(&lines, line, raw_grant.get_ref())?;
        let key = (grant.agency, grant.service.clone(), grant.purpose.clone());
        if let Some(first_line) = seen.insert(key, line) {
            return Err(PolicyError::DuplicateGrant {
                line,
                first_line,
                requester: grant.requester_pattern(),
                purpose: grant.purpose.to_string(),
            });
        }
        grants.push(grant);
    }
    let mut integrations: Vec<Integration> = Vec::with_capacity(raw.integration.len());
    for raw_integration in &raw.integration {
        let next = integration(&lines, lines.of(raw_integration), raw_integration.get_ref())?;
        if let Some(first) = integrations.iter().find(|i| i.requester == next.requester) {
            return Err(PolicyError::DuplicateIntegration {
                line: next.line,
                first_line: first.line,
                requester: next.requester.to_string(),
            });
        }
        integrations.push(next);
    }
    Ok((grants, integrations))
}

/// Validates one integration; `line` is where its table starts. It names one service:
/// an agency's record system is a system, not every service of the agency.
fn integration(
    lines: &Lines<'_>,
    line: usize,
    raw: &RawIntegration,
) -> Result<Integration, PolicyError> {
    let agency = agency_at(lines, &raw.agency)?;
    let service = raw.service.get_ref();
    if service == "*" {
        return Err(PolicyError::IntegrationOfEveryService {
            line: lines.of(&raw.service),
        });
    }
    check_slug(service).map_err(|source| PolicyError::InvalidService {
        line: lines.of(&raw.service),
        source,
    })?;
    Ok(Integration {
        requester: Requester::new(agency, service.as_str()),
        line,
    })
}

/// Validates one grant; `line` is where its table starts. Problems are reported in the
/// order the table's keys are read: agency, service, purpose, sections, fields, unmasked.
fn grant(lines: &Lines<'_>, line: usize, raw: &RawGrant) -> Result<Grant, PolicyError> {
    let agency = agency_at(lines, &raw.agency)?;
    let service = match raw.service.get_ref().as_str() {
        "*" => None,
        s => {
            check_slug(s).map_err(|source| PolicyError::InvalidService {
                line: lines.of(&raw.service),
                source,
            })?;
            Some(s.to_owned())
        }
    };
    let purpose =
        Purpose::parse(raw.purpose.get_ref()).map_err(|source| PolicyError::InvalidPurpose {
            line: lines.of(&raw.purpose),
            source,
        })?;
    let sections = granted_sections(lines, &raw.sections)?;
    let fields = granted_fields(lines, &sections, &raw.fields)?;
    let unmasked = unmasked_kinds(lines, &raw.unmasked, &fields)?;
    Ok(Grant {
        agency,
        service,
        purpose,
        fields,
        unmasked,
        self_only: raw.self_only,
        line,
    })
}

/// The agency a table names, or the error naming the agencies there are.
fn agency_at(lines: &Lines<'_>, name: &Spanned<String>) -> Result<Agency, PolicyError> {
    agency_from_slug(name.get_ref()).ok_or_else(|| PolicyError::UnknownAgency {
        line: lines.of(name),
        found: name.get_ref().clone(),
        expected: agency_slugs(),
    })
}

/// The sections a grant lists: at least one, each known and listed once.
fn granted_sections(
    lines: &Lines<'_>,
    names: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<Section>, PolicyError> {
    let mut sections = Vec::new();
    for name in names.get_ref() {
        let section = parse_section(lines, name)?;
        if sections.contains(&section) {
            return Err(PolicyError::Repeated {
                line: lines.of(name),
                what: "section",
                value: section.to_string(),
            });
        }
        sections.push(section);
    }
    if sections.is_empty() {
        return Err(PolicyError::NoSections {
            line: lines.of(names),
        });
    }
    Ok(sections)
}

/// The fields a grant shows: those its `fields` entries list, each for a granted section,
/// and every field of a granted section without a `fields` entry.
fn granted_fields(
    lines: &Lines<'_>,
    sections: &[Section],
    listed: &BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
) -> Result<FieldSet, PolicyError> {
    let mut fields = FieldSet::default();
    // Sections without a `fields` entry are granted whole.
    let mut narrowed = Vec::new();
    // In file order, so the first problem reported is the first one a reader meets.
    let mut listed: Vec<_> = listed.iter().collect();
    listed.sort_by_key(|(key, _)| key.span().start);
    for (key, names) in listed {
        let section = parse_section(lines, key)?;
        if !sections.contains(&section) {
            return Err(PolicyError::FieldsOfUngrantedSection {
                line: lines.of(key),
                section,
            });
        }
        if names.get_ref().is_empty() {
            return Err(PolicyError::NoFields {
                line: lines.of(names),
                section,
            });
        }
        for name in names.get_ref() {
            let field = parse_field(lines, section, name)?;
            if fields.contains(field) {
                return Err(PolicyError::Repeated {
                    line: lines.of(name),
                    what: "field",
                    value: field.to_string(),
                });
            }
            fields.insert(field);
        }
        narrowed.push(section);
    }
    for section in sections {
        if !narrowed.contains(section) {
            for field in section.fields() {
                fields.insert(field);
            }
        }
    }
    Ok(fields)
}

/// The mask kinds a grant shows in full: each known, listed once, and carried by a field
/// the grant shows.
fn unmasked_kinds(
    lines: &Lines<'_>,
    names: &[Spanned<String>],
    fields: &FieldSet,
) -> Result<MaskKindSet, PolicyError> {
    let mut unmasked = MaskKindSet::default();
    for name in names {
        let kind = MaskKind::parse(name.get_ref()).ok_or_else(|| PolicyError::UnknownMaskKind {
            line: lines.of(name),
            found: name.get_ref().clone(),
        })?;
        if unmasked.contains(kind) {
            return Err(PolicyError::Repeated {
                line: lines.of(name),
                what: "unmasked kind",
                value: kind.name().to_owned(),
            });
        }
        // Unmasking what the grant never shows is a sign the author meant another
        // section; saying so beats silently granting nothing.
        if !fields.iter().any(|f| f.carries() == Some(kind)) {
            return Err(PolicyError::UnmaskedNotShown {
                line: lines.of(name),
                kind,
            });
        }
        unmasked.insert(kind);
    }
    Ok(unmasked)
}

/// A field of `section`, or the error naming the section's fields.
fn parse_field(
    lines: &Lines<'_>,
    section: Section,
    name: &Spanned<String>,
) -> Result<Field, PolicyError> {
    Field::parse(section, name.get_ref()).ok_or_else(|| PolicyError::UnknownField {
        line: lines.of(name),
        section,
        found: name.get_ref().clone(),
        expected: section
            .fields()
            .map(Field::name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A section by its name, or the error naming the sections there are.
fn parse_section(lines: &Lines<'_>, name: &Spanned<String>) -> Result<Section, PolicyError> {
    Section::parse(name.get_ref()).ok_or_else(|| PolicyError::UnknownSection {
        line: lines.of(name),
        found: name.get_ref().clone(),
        expected: Section::ALL.map(Section::name).join(", "),
    })
}
