//! Line numbers for errors in TOML files (the access policy, the working-day calendar):
//! an operator fixing a file needs the line, not a byte offset.

use toml::Spanned;

/// Maps byte offsets in a file's text to 1-based line numbers.
pub(crate) struct Lines<'a>(pub(crate) &'a str);

impl Lines<'_> {
    /// The line `value` starts on.
    pub(crate) fn of<T>(&self, value: &Spanned<T>) -> usize {
        self.at(value.span().start)
    }

    /// The line of byte `offset`.
    pub(crate) fn at(&self, offset: usize) -> usize {
        let offset = offset.min(self.0.len());
        self.0.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}
