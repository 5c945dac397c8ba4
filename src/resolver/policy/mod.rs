//! Access policy and masking: who may see which sections of a person's data, for
//! which purpose, and what comes unmasked.
//!
//! The policy is default deny. A TOML file lists grants of a requester (agency and
//! service, or `*` for every service of the agency) and a purpose to the profile
//! sections, optionally narrowed to some fields, and the kinds of value shown
//! unmasked. [`Policy::decide`] turns a requester and a purpose into a [`Decision`];
//! the query layer reads only what the decision allows and passes values through
//! [`Access::show`] before they leave. See `deploy/policy.toml` for an example and
//! `docs/decisions.md` for the rules.

mod field;
pub mod mask;
mod mask_kind;
mod parse;
mod purpose;
mod section;
mod table;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use field::{Field, FieldSet};
pub use mask_kind::{MaskKind, MaskKindSet};
pub use purpose::Purpose;
pub use section::Section;

use crate::identity::{Requester, SlugError};
use crate::proto::Agency;
use crate::records::agency_slug;

/// Why a policy could not be loaded. Every problem in the file names its line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    // The I/O error is part of the message rather than a `source`, so that the one
    // line `policy check` prints says why.
    #[error("cannot read policy file {}: {error}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// The parser's description.
        message: String,
    },
    /// `agency` is not one of the four agencies.
    #[error("line {line}: unknown agency {found:?} (expected one of: {expected})")]
    UnknownAgency {
        /// 1-based line of the problem.
        line: usize,
        /// The name written.
        found: String,
        /// The names accepted.
        expected: String,
    },
    /// `service` is neither `*` nor a lowercase slug.
    #[error("line {line}: service must be \"*\" or a lowercase slug: {source}")]
    InvalidService {
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong with it.
        source: SlugError,
    },
    /// `purpose` is not a lowercase slug.
    #[error("line {line}: purpose must be a lowercase slug: {source}")]
    InvalidPurpose {
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong with it.
        source: SlugError,
    },
    /// A section name is not a profile section.
    #[error("line {line}: unknown section {found:?} (expected one of: {expected})")]
    UnknownSection {
        /// 1-based line of the problem.
        line: usize,
        /// The name written.
        found: String,
        /// The names accepted.
        expected: String,
    },
    /// A field name is not a field of the section it is listed under.
    #[error("line {line}: section {section} has no field {found:?} (its fields: {expected})")]
    UnknownField {
        /// 1-based line of the problem.
        line: usize,
        /// The section the field is listed under.
        section: Section,
        /// The name written.
        found: String,
        /// The section's field names.
        expected: String,
    },
    /// An `unmasked` entry is not a maskable kind.
    #[error(
        "line {line}: unknown unmasked kind {found:?} (expected one of: resident-id, name, address)"
    )]
    UnknownMaskKind {
        /// 1-based line of the problem.
        line: usize,
        /// The name written.
        found: String,
    },
    /// A section, field or unmasked kind is listed twice in one grant.
    #[error("line {line}: {what} {value} is listed twice")]
    Repeated {
        /// 1-based line of the second mention.
        line: usize,
        /// `section`, `field` or `unmasked kind`.
        what: &'static str,
        /// The repeated entry.
        value: String,
    },
    /// Two grants for the same requester and purpose: which one applies would be a guess.
    #[error(
        "line {line}: a second grant for {requester} with purpose {purpose} (the first is on line {first_line}); merge them"
    )]
    DuplicateGrant {
        /// 1-based line of the second grant.
        line: usize,
        /// 1-based line of the first grant.
        first_line: usize,
        /// `agency/service` as written, `*` for every service.
        requester: String,
        /// The purpose both grants name.
        purpose: String,
    },
    /// Two `[[integration]]` tables name the same requester.
    #[error(
        "line {line}: {requester} is listed as an integration twice (the first is on line {first_line})"
    )]
    DuplicateIntegration {
        /// 1-based line of the second table.
        line: usize,
        /// 1-based line of the first table.
        first_line: usize,
        /// `agency/service`.
        requester: String,
    },
    /// An integration names `*` instead of one service.
    #[error(
        "line {line}: an integration is one service of its agency (e.g. \"records\"), not \"*\""
    )]
    IntegrationOfEveryService {
        /// 1-based line of the problem.
        line: usize,
    },
    /// `fields` narrows a section that `sections` does not grant.
    #[error(
        "line {line}: fields are listed for section {section}, which this grant's sections do not include"
    )]
    FieldsOfUngrantedSection {
        /// 1-based line of the problem.
        line: usize,
        /// The section named under `fields`.
        section: Section,
    },
    /// `sections` is empty: a grant of nothing is a mistake, deny is the default.
    #[error("line {line}: the grant lists no sections (access is denied by default; remove it)")]
    NoSections {
        /// 1-based line of the problem.
        line: usize,
    },
    /// A section's field list is empty.
    #[error(
        "line {line}: no fields listed for section {section} (to grant all of it, leave it out of fields)"
    )]
    NoFields {
        /// 1-based line of the problem.
        line: usize,
        /// The section with the empty list.
        section: Section,
    },
    /// `unmasked` names a kind that no granted field shows.
    #[error(
        "line {line}: {} is unmasked but no field this grant allows shows one",
        kind.name()
    )]
    UnmaskedNotShown {
        /// 1-based line of the problem.
        line: usize,
        /// The kind named.
        kind: MaskKind,
    },
}

impl PolicyError {
    /// The 1-based line of the problem in the file, if it is about the file's content.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. }
            | Self::UnknownAgency { line, .. }
            | Self::InvalidService { line, .. }
            | Self::InvalidPurpose { line, .. }
            | Self::UnknownSection { line, .. }
            | Self::UnknownField { line, .. }
            | Self::UnknownMaskKind { line, .. }
            | Self::Repeated { line, .. }
            | Self::DuplicateGrant { line, .. }
            | Self::DuplicateIntegration { line, .. }
            | Self::IntegrationOfEveryService { line }
            | Self::FieldsOfUngrantedSection { line, .. }
            | Self::NoSections { line }
            | Self::NoFields { line, .. }
            | Self::UnmaskedNotShown { line, .. } => Some(*line),
        }
    }
}

/// One validated grant of the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The requester's agency.
    pub agency: Agency,
    /// The requester's service; `None` stands for `*`, every service of the agency.
    pub service: Option<String>,
    /// The purpose the grant is for.
    pub purpose: Purpose,
    /// The fields it allows (a section listed without fields contributes all of its own).
    pub fields: FieldSet,
    /// The kinds of value shown unmasked.
    pub unmasked: MaskKindSet,
    /// Only for a lookup of the citizen the requester acts for (a self view).
    pub self_only: bool,
    /// The line of the grant's `[[grant]]` header, for operators tracing a decision.
    pub line: usize,
}

impl Grant {
    /// `agency/service` as written in the file, `agency/*` for every service.
    pub fn requester_pattern(&self) -> String {
        format!(
            "{}/{}",
            agency_slug(self.agency),
            self.service.as_deref().unwrap_or("*")
        )
    }

    /// What this grant lets a lookup see.
    pub fn access(&self) -> Access {
        Access {
            fields: self.fields,
            unmasked: self.unmasked,
            self_only: self.self_only,
            grant_line: self.line,
        }
    }
}

/// An agency's record system (`[[integration]]`): the one kind of caller that publishes
/// its agency's records through the agency's adapter, reads them raw (`GetRecord`,
/// `ListSubjectRecords`) and receives and carries out the agency's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// The system's identity: its agency and service.
    pub requester: Requester,
    /// The line of its `[[integration]]` header.
    pub line: usize,
}

/// A caller refused an integration's powers: names the integrations of its agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIntegration {
    /// Who asked.
    pub requester: Requester,
    /// The integrations the policy lists for the requester's agency.
    pub listed: Vec<Requester>,
}

impl fmt::Display for NotIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let agency = agency_slug(self.requester.agency);
        write!(
            f,
            "{} is not an integration of the access policy: only {agency}'s record systems (",
            self.requester
        )?;
        if self.listed.is_empty() {
            f.write_str("the policy lists none")?;
        } else {
            let listed: Vec<String> = self.listed.iter().map(Requester::to_string).collect();
            f.write_str(&listed.join(", "))?;
        }
        write!(
            f,
            ") publish {agency}'s records, read them raw and carry out its tasks"
        )
    }
}

/// A loaded, validated policy: the grants, indexed for lookups, and the integrations.
#[derive(Debug, Clone)]
pub struct Policy {
    /// In file order, for the `policy check` table.
    grants: Vec<Grant>,
    /// The agencies' record systems, in file order; a handful, so a scan is enough.
    integrations: Vec<Integration>,
    /// Grant indexes per purpose; a purpose has few grants, so a scan of them is
    /// cheaper than building a composite key (and allocating) on every lookup.
    by_purpose: HashMap<Purpose, Vec<usize>>,
}

impl Policy {
    /// Parses and validates a policy from TOML text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (grants, integrations) = parse::parse(text)?;
        let mut by_purpose: HashMap<Purpose, Vec<usize>> = HashMap::new();
        for (i, grant) in grants.iter().enumerate() {
            by_purpose.entry(grant.purpose.clone()).or_default().push(i);
        }
        Ok(Self {
            grants,
            integrations,
            by_purpose,
        })
    }

    /// Reads, parses and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text)
    }

    /// The grants, in file order.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The integrations, in file order.
    pub fn integrations(&self) -> &[Integration] {
        &self.integrations
    }

    /// Whether `requester` may act as its agency's record system: publish the agency's
    /// records, read them raw and carry out its tasks. Only the integrations the policy
    /// lists may; any other service of the agency (a window, a portal) may not.
    pub fn integration(&self, requester: &Requester) -> Result<(), NotIntegration> {
        if self.integrations.iter().any(|i| i.requester == *requester) {
            return Ok(());
        }
        Err(NotIntegration {
            requester: requester.clone(),
            listed: self
                .integrations
                .iter()
                .filter(|i| i.requester.agency == requester.agency)
                .map(|i| i.requester.clone())
                .collect(),
        })
    }

    /// `purpose` as a metric label: itself when a grant names it, else `other` (a label
    /// must not take whatever a caller sends).
    pub fn purpose_label(&self, purpose: &str) -> String {
        let known = self.by_purpose.keys().any(|p| p.as_str() == purpose);
        if known {
            purpose.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Decides what `requester` may see for `purpose`.
    ///
    /// A grant for the requester's exact service wins over the agency's `*` grant, so
    /// one window can be given less (or more) than the rest of its agency. No
    /// matching grant means denied: the policy is default deny.
    pub fn decide(&self, requester: &Requester, purpose: &Purpose) -> Decision {
        let mut wildcard = None;
        for &i in self.by_purpose.get(purpose).into_iter().flatten() {
            let grant = &self.grants[i];
            if grant.agency != requester.agency {
                continue;
            }
            match &grant.service {
                Some(service) if *service == requester.service => {
                    return Decision::Allowed(grant.access());
                }
                Some(_) => {}
                None => wildcard = Some(grant),
            }
        }
        match wildcard {
            Some(grant) => Decision::Allowed(grant.access()),
            None => Decision::Denied(Denial {
                requester: requester.clone(),
                purpose: purpose.clone(),
            }),
        }
    }

    /// Who may see what, as a plain-text table (one row per grant) for `policy check`.
    pub fn table(&self) -> String {
        table::render(&self.grants, &self.integrations)
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A grant matched: what it allows.
    Allowed(Access),
    /// No grant matched: the lookup is refused (`PERMISSION_DENIED`) and audited.
    Denied(Denial),
}

/// What an allowed lookup may see and how it is masked. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    fields: FieldSet,
    unmasked: MaskKindSet,
    self_only: bool,
    grant_line: usize,
}

impl Access {
    /// Whether the lookup may see `field`.
    pub fn allows(&self, field: Field) -> bool {
        self.fields.contains(field)
    }

    /// Whether the lookup may see at least one field of `section`.
    pub fn allows_section(&self, section: Section) -> bool {
        self.fields.has_section(section)
    }

    /// The fields the lookup may see.
    pub fn fields(&self) -> FieldSet {
        self.fields
    }

    /// The sections the lookup may see (some perhaps only in part), in profile order.
    pub fn sections(&self) -> impl Iterator<Item = Section> + '_ {
        Section::ALL
            .into_iter()
            .filter(|s| self.fields.has_section(*s))
    }

    /// The sections withheld entirely: the answer names them as withheld.
    pub fn withheld(&self) -> impl Iterator<Item = Section> + '_ {
        Section::ALL
            .into_iter()
            .filter(|s| !self.fields.has_section(*s))
    }

    /// Whether values of `kind` are shown unmasked.
    pub fn is_unmasked(&self, kind: MaskKind) -> bool {
        self.unmasked.contains(kind)
    }

    /// `value` as the requester may see it: as is when the grant unmasks `kind`,
    /// masked by [`MaskKind::mask`] otherwise.
    pub fn show<'a>(&self, kind: MaskKind, value: &'a str) -> Cow<'a, str> {
        if self.is_unmasked(kind) {
            Cow::Borrowed(value)
        } else {
            Cow::Owned(kind.mask(value))
        }
    }

    /// Whether the grant is a self view: the query layer must check that the subject
    /// is the citizen the requester acts for, and refuse otherwise.
    pub fn self_only(&self) -> bool {
        self.self_only
    }

    /// The line of the grant that allowed the lookup (for audit and debugging).
    pub fn grant_line(&self) -> usize {
        self.grant_line
    }
}

/// A refused lookup: names the grant that would have allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Who asked.
    pub requester: Requester,
    /// For which purpose.
    pub purpose: Purpose,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no grant for {} with purpose {} (access is denied unless the policy grants it)",
            self.requester, self.purpose
        )
    }
}

#[cfg(test)]
mod tests;
