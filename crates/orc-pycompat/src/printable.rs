//! Python's `str.isprintable` of one character, which decides what `repr`
//! escapes.

/// Whether CPython's `repr` leaves `c` as it is (`str.isprintable`).
///
/// Exact for every assigned code point of Unicode 14 (CPython 3.11; the
/// `cpython` test checks them all): control, format, separator other than
/// the space, private-use, surrogate and non-character code points are not
/// printable. Unassigned code points count as printable here, where CPython
/// escapes them: which code points are unassigned changes with each Unicode
/// version, and orc has always printed them as they are.
pub fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    let non_printable = matches!(
        cp,
        0x00..=0x1f
            | 0x7f..=0xa0
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xf8ff
            | 0xfdd0..=0xfdef
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..=0x10ffff
    ) || (cp & 0xfffe) == 0xfffe;
    !non_printable
}
