//! Per-axis settings shared by the convolution and pooling parameter structs.

/// A per-axis (height, width) pair: `2.into()` is `[2, 2]`, `(1, 2).into()` is `[1, 2]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair(pub [usize; 2]);

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Self([v, v])
    }
}

impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Self {
        Self([h, w])
    }
}

impl From<[usize; 2]> for Pair {
    fn from(v: [usize; 2]) -> Self {
        Self(v)
    }
}

/// Builder setters for `[usize; 2]` fields that take one value for both axes or a
/// (height, width) pair: `pair_setters!(stride, padding)`.
macro_rules! pair_setters {
    ($($field:ident),*) => {
        $(
            #[doc = concat!("Sets `", stringify!($field), "`: one value for both axes, or (height, width).")]
            pub fn $field(mut self, value: impl Into<$crate::params::Pair>) -> Self {
                self.$field = value.into().0;
                self
            }
        )*
    };
}
pub(crate) use pair_setters;
