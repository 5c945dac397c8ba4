//! The kinds of value shown masked unless a grant lists them under `unmasked`, and sets
//! of them. Each name is the kebab-case word of the policy file.

/// A kind of value shown masked unless the grant lists it under `unmasked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MaskKind {
    /// Resident ID numbers: `110101********123X`.
    ResidentId,
    /// Personal names: `张*`.
    Name,
    /// Addresses: cut to the district.
    Address,
}

impl MaskKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [MaskKind; 3] = [MaskKind::ResidentId, MaskKind::Name, MaskKind::Address];

    /// The policy-file name, e.g. `resident-id`.
    pub fn name(self) -> &'static str {
        match self {
            MaskKind::ResidentId => "resident-id",
            MaskKind::Name => "name",
            MaskKind::Address => "address",
        }
    }

    /// The kind a policy-file name denotes.
    pub fn parse(name: &str) -> Option<MaskKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Masks `value` by the rule of this kind (see [`super::mask`]).
    pub fn mask(self, value: &str) -> String {
        match self {
            MaskKind::ResidentId => super::mask::resident_id(value),
            MaskKind::Name => super::mask::name(value),
            MaskKind::Address => super::mask::address(value),
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of mask kinds, as a bit mask (see [`super::FieldSet`] for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskKindSet(u8);

impl MaskKindSet {
    /// Adds a kind.
    pub fn insert(&mut self, kind: MaskKind) {
        self.0 |= kind.bit();
    }

    /// Whether the set holds `kind`.
    pub fn contains(self, kind: MaskKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds in the set.
    pub fn iter(self) -> impl Iterator<Item = MaskKind> {
        MaskKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<MaskKind> for MaskKindSet {
    fn from_iter<I: IntoIterator<Item = MaskKind>>(iter: I) -> Self {
        let mut set = MaskKindSet::default();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_kind_names_round_trip() {
        for k in MaskKind::ALL {
            assert_eq!(MaskKind::parse(k.name()), Some(k));
        }
    }

    #[test]
    fn mask_kind_sets_hold_exactly_what_was_inserted() {
        let kinds: MaskKindSet = [MaskKind::Address].into_iter().collect();
        assert!(kinds.contains(MaskKind::Address));
        assert!(!kinds.contains(MaskKind::Name));
    }
}
