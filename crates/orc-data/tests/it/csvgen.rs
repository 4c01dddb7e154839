//! A deterministic CSV generator shared by the streaming tests and the
//! `aggregate_file` benchmark (which includes this file by path).

use std::io::{self, Write};

/// The header of every generated file.
pub(crate) const HEADER: &str = "id,region,code,amount,big,note,flag,mixed";

/// A small deterministic generator (xorshift64*).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied().unwrap_or_default()
    }
}

/// What the generated table looks like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Nulls, numbers and strings in one column, group keys that are numbers
    /// (`10` and `10.0`), strings and booleans, quoted cells holding commas,
    /// quotes and line breaks, CRLF line ends, integer sums that overflow.
    pub(crate) messy: bool,
    /// How many distinct values `code` takes.
    pub(crate) codes: u64,
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    /// Bytes written.
    pub(crate) bytes: u64,
    /// Data rows written.
    pub(crate) rows: u64,
}

/// Writes the header and rows until at least `target_bytes` are written.
pub(crate) fn write_csv(
    out: &mut impl Write,
    target_bytes: u64,
    shape: Shape,
    seed: u64,
) -> io::Result<Written> {
    let mut rng = Rng::new(seed);
    let mut line = String::with_capacity(256);
    line.push_str(HEADER);
    line.push('\n');
    out.write_all(line.as_bytes())?;
    let mut written = Written {
        bytes: line.len() as u64,
        rows: 0,
    };
    while written.bytes < target_bytes {
        line.clear();
        row(&mut rng, shape, written.rows, &mut line);
        out.write_all(line.as_bytes())?;
        written.bytes += line.len() as u64;
        written.rows += 1;
    }
    Ok(written)
}

fn row(rng: &mut Rng, shape: Shape, id: u64, line: &mut String) {
    use std::fmt::Write as _;
    let plain = ["west", "east", "north", "south", "central", "islands"];
    let region = if shape.messy && rng.below(3) == 0 {
        rng.pick(&[
            "10",
            "10.0",
            "2.5",
            "007",
            "",
            "  padded  ",
            "é-ü",
            "TRUE",
            "true",
            "\"a,b\"",
            "\"multi\nline\"",
            "-0",
        ])
    } else {
        rng.pick(&plain)
    };
    let code = rng.below(shape.codes);
    let _ = write!(line, "{id},{region},");
    if shape.messy && rng.below(20) == 0 {
        line.push_str(rng.pick(&["", "3.0", " 4 "]));
    } else {
        let _ = write!(line, "{code}");
    }
    line.push(',');
    let amount = i64::try_from(rng.below(2001)).unwrap_or(0) - 1000;
    match rng.below(if shape.messy { 12 } else { 3 }) {
        0 => {
            let _ = write!(line, "{amount}");
        }
        1 => {
            let _ = write!(line, "{amount}.{}", rng.below(100));
        }
        2 => {
            let _ = write!(line, "{}.25", amount / 10);
        }
        3 => line.push_str(""),
        4 => line.push_str(rng.pick(&["-0.0", "1e3", " 7 ", "+5", "1.5e300", "-2.5E-3"])),
        _ => {
            let _ = write!(line, "{amount}");
        }
    }
    let big = 9_223_372_036_854_775_000_u64 + rng.below(800);
    let _ = write!(line, ",{big},");
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    if shape.messy && rng.below(6) == 0 {
        line.push_str(rng.pick(&[
            "\"quoted, with a comma\"",
            "\"two\nlines\"",
            "\"has \"\"quotes\"\"\"",
            "\"semi;colon|pipe\ttab\"",
            "",
            "ünïcödé",
            "\"  spaced  \"",
        ]));
    } else {
        line.push_str(rng.pick(&words));
    }
    line.push(',');
    line.push_str(rng.pick(&["true", "FALSE", "", "false"]));
    line.push(',');
    if shape.messy && rng.below(50) == 0 {
        line.push_str(rng.pick(&["abc", "007", ""]));
    } else {
        let _ = write!(line, "{}", rng.below(100));
    }
    if shape.messy && rng.below(4) == 0 {
        line.push_str("\r\n");
    } else {
        line.push('\n');
    }
}
