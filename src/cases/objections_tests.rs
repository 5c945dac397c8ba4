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
