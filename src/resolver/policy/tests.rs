//! Policy files of every grant shape, every validation error with its line, and
//! decisions.

use super::*;

const EXAMPLE: &str = include_str!("../../../deploy/policy.toml");

fn purpose(s: &str) -> Purpose {
    Purpose::parse(s).unwrap()
}

fn allowed(policy: &Policy, agency: Agency, service: &str, p: &str) -> Access {
    match policy.decide(&Requester::new(agency, service), &purpose(p)) {
        Decision::Allowed(access) => access,
        Decision::Denied(d) => panic!("denied: {d}"),
    }
}

fn fields(access: &Access) -> Vec<String> {
    access.fields().iter().map(|f| f.to_string()).collect()
}

/// The error of a policy that must not load.
fn error(text: &str) -> PolicyError {
    match Policy::parse(text) {
        Ok(p) => panic!("accepted: {:?}", p.grants()),
        Err(e) => e,
    }
}

/// A grant on line 1 with the given extra lines, for error tests.
fn one_grant(rest: &str) -> String {
    format!(
        "[[grant]]\nagency = \"housing\"\nservice = \"transfer-window\"\npurpose = \"property-transfer\"\n{rest}"
    )
}

#[test]
fn a_section_without_fields_is_granted_whole_and_fields_narrow_one() {
    let policy = Policy::parse(EXAMPLE).unwrap();
    let access = allowed(
        &policy,
        Agency::Housing,
        "transfer-window",
        "property-transfer",
    );
    assert_eq!(
        fields(&access),
        [
            "identity.person-id",
            "identity.name",
            "household.number",
            "household.region",
            "household.address",
            "household.status",
            "household.property-unit",
            "household.registered-on",
            "household.destination",
            "provident-fund.loans",
            "property.unit-number",
            "property.certificate",
            "property.address",
            "property.owners",
            "property.area",
            "property.encumbrances",
            "property.registered-on",
        ]
    );
    assert_eq!(
        access.sections().collect::<Vec<_>>(),
        [
            Section::Identity,
            Section::Household,
            Section::ProvidentFund,
            Section::Property
        ]
    );
    assert_eq!(
        access.withheld().collect::<Vec<_>>(),
        [Section::SocialSecurity]
    );
    assert!(access.allows(Field::FundLoans));
    assert!(!access.allows(Field::FundBalance));
    assert!(!access.allows(Field::BirthDate));
    assert!(access.allows_section(Section::ProvidentFund));
    assert!(!access.self_only());
    assert_eq!(access.grant_line(), 55);
}

#[test]
fn values_are_masked_unless_the_grant_unmasks_their_kind() {
    let policy = Policy::parse(EXAMPLE).unwrap();
    let window = allowed(
        &policy,
        Agency::Housing,
        "transfer-window",
        "property-transfer",
    );
    assert_eq!(
        window.show(MaskKind::ResidentId, "11010119900307123X"),
        "110101********123X"
    );
    assert_eq!(window.show(MaskKind::Name, "张三"), "张*");
    assert_eq!(
        window.show(MaskKind::Address, "北京市朝阳区建国路88号"),
        "北京市朝阳区"
    );

    let portal = allowed(
        &policy,
        Agency::PublicSecurity,
        "citizen-portal",
        "self-view",
    );
    assert!(portal.self_only());
    assert_eq!(portal.withheld().count(), 0);
    assert_eq!(
        portal.show(MaskKind::ResidentId, "11010119900307123X"),
        "11010119900307123X"
    );
    assert_eq!(portal.show(MaskKind::Name, "张三"), "张三");
    assert_eq!(
        portal.show(MaskKind::Address, "北京市朝阳区建国路88号"),
        "北京市朝阳区建国路88号"
    );
}

#[test]
fn unmasking_is_per_kind() {
    let policy = Policy::parse(&one_grant(
        "sections = [\"identity\", \"household\"]\nunmasked = [\"name\"]\n",
    ))
    .unwrap();
    let access = allowed(
        &policy,
        Agency::Housing,
        "transfer-window",
        "property-transfer",
    );
    assert!(access.is_unmasked(MaskKind::Name));
    assert!(!access.is_unmasked(MaskKind::ResidentId));
    assert!(!access.is_unmasked(MaskKind::Address));
    assert_eq!(access.show(MaskKind::Name, "李四"), "李四");
    assert_eq!(
        access.show(MaskKind::ResidentId, "11010119900307123X"),
        "110101********123X"
    );
}

#[test]
fn default_deny_names_the_missing_grant() {
    let policy = Policy::parse(EXAMPLE).unwrap();
    let cases = [
        // Granted to another purpose.
        (
            Agency::Housing,
            "transfer-window",
            "social-security-transfer",
        ),
        // Another service of the same agency, and no "*" grant.
        (Agency::Housing, "archive", "property-transfer"),
        // Another agency with the same service name.
        (
            Agency::ProvidentFund,
            "transfer-window",
            "property-transfer",
        ),
        // A purpose nobody is granted.
        (Agency::PublicSecurity, "citizen-portal", "marketing"),
    ];
    for (agency, service, p) in cases {
        let requester = Requester::new(agency, service);
        match policy.decide(&requester, &purpose(p)) {
            Decision::Denied(denial) => {
                assert_eq!(denial.requester, requester);
                assert_eq!(denial.purpose.as_str(), p);
            }
            Decision::Allowed(a) => panic!("{requester} for {p} allowed: {a:?}"),
        }
    }
    let Decision::Denied(denial) = policy.decide(
        &Requester::new(Agency::Housing, "archive"),
        &purpose("property-transfer"),
    ) else {
        panic!("allowed")
    };
    assert_eq!(
        denial.to_string(),
        "no grant for housing/archive with purpose property-transfer \
         (access is denied unless the policy grants it)"
    );
}

#[test]
fn an_empty_policy_denies_everything() {
    let policy = Policy::parse("# nothing granted yet\n").unwrap();
    assert!(policy.grants().is_empty());
    assert!(matches!(
        policy.decide(
            &Requester::new(Agency::Housing, "transfer-window"),
            &purpose("property-transfer")
        ),
        Decision::Denied(_)
    ));
    assert_eq!(
        policy.table(),
        "requester  purpose  subject  sections  unmasked\n\
         ---------  -------  -------  --------  --------\n\
         (no grants: every lookup is denied)\n\n\
         integrations (publish, raw reads, tasks of their agency):\n  \
         (none: no adapter accepts a publish, no task is carried out)\n"
    );
    let refused = policy
        .integration(&Requester::new(Agency::Housing, "records"))
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "housing/records is not an integration of the access policy: only housing's record \
         systems (the policy lists none) publish housing's records, read them raw and carry \
         out its tasks"
    );
}

#[test]
fn only_listed_integrations_act_as_their_agencys_record_system() {
    let text = "\
[[integration]]
agency = \"public-security\"
service = \"records\"

[[integration]]
agency = \"public-security\"
service = \"household-system\"
";
    let policy = Policy::parse(text).unwrap();
    let of = |agency, service| policy.integration(&Requester::new(agency, service));
    assert!(of(Agency::PublicSecurity, "records").is_ok());
    assert!(of(Agency::PublicSecurity, "household-system").is_ok());
    // Another service of the agency, and the same service name of another agency.
    let portal = of(Agency::PublicSecurity, "citizen-portal").unwrap_err();
    assert_eq!(
        portal.to_string(),
        "public-security/citizen-portal is not an integration of the access policy: only \
         public-security's record systems (public-security/records, \
         public-security/household-system) publish public-security's records, read them raw \
         and carry out its tasks"
    );
    assert!(of(Agency::Housing, "records").is_err());
    assert_eq!(policy.integrations()[1].line, 5);
    assert!(policy.table().ends_with(
        "integrations (publish, raw reads, tasks of their agency):\n  \
         public-security/records\n  public-security/household-system\n"
    ));
}

#[test]
fn an_integration_names_one_known_service_once() {
    let error = |text: &str| Policy::parse(text).unwrap_err().to_string();
    assert_eq!(
        error("[[integration]]\nagency = \"housing\"\nservice = \"*\"\n"),
        "line 3: an integration is one service of its agency (e.g. \"records\"), not \"*\""
    );
    assert!(
        error("[[integration]]\nagency = \"police\"\nservice = \"records\"\n")
            .starts_with("line 2: unknown agency \"police\"")
    );
    assert!(
        error("[[integration]]\nagency = \"housing\"\nservice = \"Records\"\n")
            .starts_with("line 3: service must be")
    );
    assert_eq!(
        error(
            "[[integration]]\nagency = \"housing\"\nservice = \"records\"\n\
             [[integration]]\nagency = \"housing\"\nservice = \"records\"\n"
        ),
        "line 4: housing/records is listed as an integration twice (the first is on line 1)"
    );
    assert!(
        error("[[integration]]\nagency = \"housing\"\nservice = \"records\"\npurpose = \"x\"\n")
            .contains("unknown field `purpose`")
    );
}

#[test]
fn a_wildcard_service_matches_every_service_and_the_exact_one_wins() {
    let text = "\
[[grant]]
agency = \"provident-fund\"
service = \"*\"
purpose = \"loan-approval\"
sections = [\"property\"]

[[grant]]
agency = \"provident-fund\"
service = \"counter\"
purpose = \"loan-approval\"
sections = [\"property\", \"social-security\"]
fields = { property = [\"unit-number\"] }
";
    let policy = Policy::parse(text).unwrap();
    let online = allowed(&policy, Agency::ProvidentFund, "online", "loan-approval");
    assert_eq!(online.grant_line(), 1);
    assert!(online.fields().has_whole_section(Section::Property));
    assert!(!online.allows_section(Section::SocialSecurity));

    let counter = allowed(&policy, Agency::ProvidentFund, "counter", "loan-approval");
    assert_eq!(counter.grant_line(), 7);
    assert!(counter.allows(Field::TitleUnitNumber));
    assert!(!counter.allows(Field::TitleOwners));
    assert!(counter.fields().has_whole_section(Section::SocialSecurity));

    // The wildcard is per agency.
    assert!(matches!(
        policy.decide(
            &Requester::new(Agency::Housing, "online"),
            &purpose("loan-approval")
        ),
        Decision::Denied(_)
    ));
}

#[test]
fn the_example_policy_table_says_who_sees_what() {
    let policy = Policy::parse(EXAMPLE).unwrap();
    assert_eq!(
        policy.table(),
        "\
requester                        purpose                   subject  sections                                                                                                  unmasked
-------------------------------  ------------------------  -------  --------------------------------------------------------------------------------------------------------  --------------------------
housing/transfer-window          property-transfer         any      identity(person-id name), household, provident-fund(loans), property                                      none
social-security/transfer-window  social-security-transfer  any      identity, household(region status), social-security                                                       none
public-security/move-window      household-move            any      identity, household                                                                                       none
provident-fund/transfer-window   provident-fund-transfer   any      identity, provident-fund(account balance)                                                                 none
provident-fund/*                 loan-approval             any      identity, social-security(contributions), provident-fund, property(unit-number owners area encumbrances)  none
public-security/citizen-portal   self-view                 self     identity, household, social-security, provident-fund, property                                            resident-id, name, address
public-security/citizen-portal   data-objection            self     identity, household, social-security, provident-fund, property                                            resident-id, name, address
housing/transfer-window          data-objection            any      identity, household, provident-fund, property                                                             none

integrations (publish, raw reads, tasks of their agency):
  social-security/records
  public-security/records
  housing/records
  provident-fund/records
"
    );
}

#[test]
fn loading_a_missing_file_names_it() {
    let err = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }));
    assert_eq!(err.line(), None);
    assert_eq!(
        err.to_string(),
        "cannot read policy file /nonexistent/policy.toml: No such file or directory (os error 2)"
    );
}

/// Asserts that each policy text fails to load, naming the line given, with the exact
/// message an operator reads: every way a policy file can be wrong is in one of the
/// tests below.
fn assert_rejected(cases: Vec<(String, usize, &str)>) {
    for (text, line, message) in cases {
        let err = error(&text);
        assert_eq!(err.line(), Some(line), "{text}\n=> {err}");
        assert_eq!(err.to_string(), message, "{text}");
    }
}

/// Not TOML, or a key unknown, missing or of the wrong type.
#[test]
fn a_policy_that_is_not_toml_or_has_a_wrong_key_names_the_line() {
    assert_rejected(vec![
        (
            "[[grant]\nagency = \"housing\"\n".to_owned(),
            1,
            "line 1: unclosed array table, expected `]`",
        ),
        (
            one_grant("sections = [\"property\"]\nbogus = 1\n"),
            6,
            "line 6: unknown field `bogus`, expected one of `agency`, `service`, `purpose`, \
             `sections`, `fields`, `unmasked`, `self-only`",
        ),
        (
            "[[grant]]\nagency = \"housing\"\nservice = \"w\"\nsections = [\"property\"]\n"
                .to_owned(),
            1,
            "line 1: missing field `purpose`",
        ),
        (
            one_grant("sections = \"property\"\n"),
            5,
            "line 5: invalid type: string \"property\", expected a sequence",
        ),
    ]);
}

/// A requester or purpose that is not one.
#[test]
fn an_unknown_agency_service_or_purpose_names_the_line() {
    assert_rejected(vec![
        (
            "# header\n[[grant]]\nagency = \"land\"\nservice = \"w\"\npurpose = \"p\"\nsections = [\"property\"]\n"
                .to_owned(),
            3,
            "line 3: unknown agency \"land\" (expected one of: social-security, public-security, \
             housing, provident-fund)",
        ),
        (
            "[[grant]]\nagency = \"housing\"\nservice = \"Transfer Window\"\npurpose = \"p\"\nsections = [\"property\"]\n"
                .to_owned(),
            3,
            "line 3: service must be \"*\" or a lowercase slug: \"Transfer Window\" is not a \
             lowercase slug: only a-z, 0-9 and '-' are allowed",
        ),
        (
            "[[grant]]\nagency = \"housing\"\nservice = \"w\"\npurpose = \"*\"\nsections = [\"property\"]\n"
                .to_owned(),
            4,
            "line 4: purpose must be a lowercase slug: \"*\" is not a lowercase slug: only a-z, \
             0-9 and '-' are allowed",
        ),
    ]);
}

/// Sections unknown, listed twice, or none.
#[test]
fn an_unknown_repeated_or_missing_section_names_the_line() {
    assert_rejected(vec![
        (
            one_grant("sections = [\n  \"property\",\n  \"houshold\",\n]\n"),
            7,
            "line 7: unknown section \"houshold\" (expected one of: identity, household, \
             social-security, provident-fund, property)",
        ),
        (
            one_grant("sections = [\"property\", \"property\"]\n"),
            5,
            "line 5: section property is listed twice",
        ),
        (
            one_grant("sections = []\n"),
            5,
            "line 5: the grant lists no sections (access is denied by default; remove it)",
        ),
    ]);
}

/// Fields of an unknown or ungranted section, unknown, listed twice, or none.
#[test]
fn a_wrong_fields_entry_names_the_line() {
    assert_rejected(vec![
        (
            one_grant("sections = [\"property\"]\nfields = { property = [\"price\"] }\n"),
            6,
            "line 6: section property has no field \"price\" (its fields: unit-number, \
             certificate, address, owners, area, encumbrances, registered-on)",
        ),
        (
            one_grant("sections = [\"property\"]\n\n[grant.fields]\nidentity = [\"name\"]\n"),
            8,
            "line 8: fields are listed for section identity, which this grant's sections do \
             not include",
        ),
        (
            one_grant("sections = [\"property\"]\n\n[grant.fields]\nproprety = [\"area\"]\n"),
            8,
            "line 8: unknown section \"proprety\" (expected one of: identity, household, \
             social-security, provident-fund, property)",
        ),
        (
            one_grant("sections = [\"property\"]\nfields = { property = [\"area\", \"area\"] }\n"),
            6,
            "line 6: field property.area is listed twice",
        ),
        (
            one_grant("sections = [\"property\"]\nfields = { property = [] }\n"),
            6,
            "line 6: no fields listed for section property (to grant all of it, leave it out \
             of fields)",
        ),
    ]);
}

/// Unmasked kinds unknown, listed twice, or shown by no granted field.
#[test]
fn a_wrong_unmasked_entry_names_the_line() {
    assert_rejected(vec![
        (
            one_grant("sections = [\"property\"]\nunmasked = [\"phone\"]\n"),
            6,
            "line 6: unknown unmasked kind \"phone\" (expected one of: resident-id, name, \
             address)",
        ),
        (
            one_grant("sections = [\"identity\"]\nunmasked = [\"name\", \"name\"]\n"),
            6,
            "line 6: unmasked kind name is listed twice",
        ),
        (
            // Property shows addresses and owners' IDs, never a name.
            one_grant("sections = [\"property\"]\nunmasked = [\"name\"]\n"),
            6,
            "line 6: name is unmasked but no field this grant allows shows one",
        ),
        (
            // The name field is left out, so unmasking names grants nothing.
            one_grant(
                "sections = [\"identity\"]\nfields = { identity = [\"sex\", \"birth-date\"] }\n\
                 unmasked = [\"name\"]\n",
            ),
            7,
            "line 7: name is unmasked but no field this grant allows shows one",
        ),
    ]);
}

/// Two grants for one requester and purpose.
#[test]
fn a_second_grant_for_one_requester_and_purpose_names_both_lines() {
    assert_rejected(vec![(
        format!(
            "{}\n# again, by mistake\n{}",
            one_grant("sections = [\"property\"]\n"),
            one_grant("sections = [\"identity\"]\n")
        ),
        8,
        "line 8: a second grant for housing/transfer-window with purpose property-transfer \
             (the first is on line 1); merge them",
    )]);
}

#[test]
fn a_wildcard_and_an_exact_service_grant_are_not_duplicates() {
    let text = format!(
        "{}\n{}",
        one_grant("sections = [\"property\"]\n"),
        one_grant("sections = [\"property\"]\n").replace("transfer-window", "*")
    );
    let policy = Policy::parse(&text).unwrap();
    assert_eq!(policy.grants().len(), 2);
    assert_eq!(policy.grants()[1].requester_pattern(), "housing/*");
    assert_eq!(policy.grants()[1].line, 7);
}
