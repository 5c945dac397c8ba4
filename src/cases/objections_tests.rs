use super::*;

fn request() -> proto::FileObjectionRequest {
    proto::FileObjectionRequest {
        request_id: "objection-1".into(),
        record_key: "public-security/household_registration/H-1".into(),
        version: 3,
        disputed_fields: vec!["address".into()],
        note: "I moved out in 2024".into(),
        person_id: "110105198001010016".into(),
        min_positions: Vec::new(),
    }
}

fn fields(r: &proto::FileObjectionRequest) -> Vec<String> {
    validate_file_objection(r)
        .to_string()
        .split("; ")
        .map(|s| s.split(':').next().unwrap_or_default().trim().to_owned())
        .collect()
}

#[test]
fn a_well_formed_objection_passes() {
    assert!(validate_file_objection(&request()).is_empty());
}

#[test]
fn each_bad_field_is_named() {
    type Spoil = fn(&mut proto::FileObjectionRequest);
    let cases: [(&str, Spoil); 7] = [
        ("record_key", |r| r.record_key = "nobody/nothing/1".into()),
        ("version", |r| r.version = 0),
        ("disputed_fields", |r| r.disputed_fields.clear()),
        ("disputed_fields[0]", |r| {
            r.disputed_fields = vec!["colour".into()]
        }),
        ("disputed_fields[1]", |r| {
            r.disputed_fields = vec!["address".into(), "address".into()];
        }),
        ("note", |r| r.note = "长".repeat(501)),
        ("person_id", |r| r.person_id = "110101".into()),
    ];
    for (field, spoil) in cases {
        let mut r = request();
        spoil(&mut r);
        let named = fields(&r);
        assert_eq!(named, vec![field.to_owned()], "{field}: {named:?}");
    }
}

#[test]
fn too_many_fields_or_an_empty_note_are_refused() {
    let mut r = request();
    r.disputed_fields = (0..17).map(|i| format!("f{i}")).collect();
    r.note.clear();
    assert_eq!(fields(&r), vec!["disputed_fields", "note"]);
}

#[test]
fn the_grant_must_include_the_records_section_and_a_self_only_one_its_citizen() {
    use crate::identity::Requester;
    use crate::resolver::policy::Policy;
    let policy = Policy::parse(
        "[[grant]]\nagency = \"housing\"\nservice = \"desk\"\npurpose = \"data-objection\"\n\
         sections = [\"property\"]\n\n\
         [[grant]]\nagency = \"public-security\"\nservice = \"citizen-portal\"\n\
         purpose = \"data-objection\"\nsections = [\"household\"]\nself-only = true\n",
    )
    .unwrap();
    let params = |person: &str| CaseParams {
        kind: Some(case_params::Kind::DataObjection(
            proto::DataObjectionParams {
                record_key: "public-security/household_registration/H-1".into(),
                version: 1,
                person_id: person.into(),
                ..Default::default()
            },
        )),
    };
    let caller = |requester: &str, citizen: Option<&str>| Caller {
        requester: Requester::parse(requester).unwrap(),
        on_behalf_of: citizen.map(|c| ResidentId::parse(c).unwrap()),
    };
    let (citizen, other) = ("110105198001010016", "110105198202020026");
    let decide = |c: &Caller, person: &str| {
        grants::decide(&policy, c, PURPOSE, Some(&params(person))).map(|_| ())
    };
    // The desk's grant lacks the household section the record is in.
    let desk = decide(&caller("housing/desk", None), citizen).unwrap_err();
    assert!(desk.contains("household"), "{desk}");
    let portal = caller("public-security/citizen-portal", Some(citizen));
    assert_eq!(decide(&portal, citizen), Ok(()));
    let refused = decide(&portal, other).unwrap_err();
    assert!(refused.contains("self-only"), "{refused}");
}
