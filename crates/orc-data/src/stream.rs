//! Streaming a CSV/TSV file named by `data`: the delimiter is sniffed from the
//! first lines, then records are read one at a time through a buffer of at
//! most [`Limits::chunk_bytes`], so memory does not grow with the file.
//!
//! A file is streamed only when the in-memory path would read it as CSV too
//! (see [`open`]); everything else stops with [`Stop::InMemory`] and the
//! caller loads the input as before.

use crate::input::{
    DELIMITERS, DelimiterCounts, Format, SNIFF_LINES, cell_value, csv_builder, header_names,
    input_format, looks_like_path, pick_delimiter,
};
use crate::params::{Params, lookup};
use crate::value::Row;
use crate::{Limits, ToolFailure};
use csv::StringRecord;
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

/// The smallest read buffer used, whatever `chunk_bytes` says.
const MIN_BUFFER: usize = 64;
/// The largest read buffer used: more makes reading no faster.
const MAX_BUFFER: usize = 1 << 20;
/// The buffer used to sniff the first lines.
const SNIFF_BUFFER: usize = 64 << 10;

/// Why a streamed action did not produce a result.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The input is not a CSV file to stream: load it in memory as before.
    InMemory,
    /// The action failed.
    Fail(ToolFailure),
}

impl From<ToolFailure> for Stop {
    fn from(e: ToolFailure) -> Self {
        Stop::Fail(e)
    }
}

/// A CSV file opened for streaming, positioned after its header.
#[derive(Debug)]
pub(crate) struct CsvFile {
    /// The parameter naming the file.
    name: String,
    /// The path as given.
    path: String,
    reader: csv::Reader<File>,
    /// The column names (deduplicated as the in-memory path does).
    names: Vec<String>,
    delimiter: u8,
    /// Whether the format was sniffed (`auto`), not given or implied by the extension.
    auto: bool,
    literal: LiteralCheck,
    records: u64,
}

/// Opens `data` (or `input_data`) for streaming when it names an existing
/// file that the in-memory path would parse as CSV: the format is `csv`
/// (given, or implied by a `.csv`/`.tsv` extension), or it is sniffed and the
/// text does not start like JSON, JSON Lines or a Python literal.
pub(crate) fn open(params: &Params, limits: &Limits) -> Result<CsvFile, Stop> {
    let Some((name, Value::String(s))) = lookup(params, &["data", "input_data"]) else {
        return Err(Stop::InMemory);
    };
    if !looks_like_path(s) || !Path::new(s).is_file() {
        return Err(Stop::InMemory);
    }
    let auto = match input_format(params)? {
        Format::Csv => false,
        Format::Auto => match Format::from_extension(Path::new(s)) {
            Format::Csv => false,
            Format::Auto => true,
            Format::Json | Format::Jsonl => return Err(Stop::InMemory),
        },
        Format::Json | Format::Jsonl => return Err(Stop::InMemory),
    };
    let io = |source| {
        Stop::Fail(ToolFailure::Io {
            name: name.to_string(),
            path: s.clone(),
            source,
        })
    };
    let mut file = File::open(s).map_err(io)?;
    let sniffed = sniff(&file, limits.chunk_bytes.clamp(MIN_BUFFER, SNIFF_BUFFER)).map_err(io)?;
    if auto && !sniffed.may_be_csv() {
        return Err(Stop::InMemory);
    }
    file.seek(SeekFrom::Start(sniffed.bom_len)).map_err(io)?;
    // Cells are trimmed as they are used ([`CsvFile::row`], [`CsvFile::cell`]):
    // `str::trim` is what `Trim::All` applies, but the reader would rebuild
    // every record to do it.
    let reader = csv_builder(sniffed.delimiter)
        .trim(csv::Trim::Headers)
        .buffer_capacity(limits.chunk_bytes.clamp(MIN_BUFFER, MAX_BUFFER))
        .from_reader(file);
    let mut file = CsvFile {
        name: name.to_string(),
        path: s.clone(),
        reader,
        names: Vec::new(),
        delimiter: sniffed.delimiter,
        auto,
        literal: LiteralCheck::default(),
        records: 0,
    };
    let headers = match file.reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(file.csv_failure(e)),
    };
    file.literal.see(&headers, file.delimiter);
    file.names = header_names(&headers).map_err(|reason| {
        file.fail(ToolFailure::Unparseable {
            name: file.name.clone(),
            formats: "CSV",
            reason: format!("file `{}`: {reason}", file.path),
        })
    })?;
    Ok(file)
}

impl CsvFile {
    /// The column names.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads the next record into `record`; `false` at the end of the file.
    pub(crate) fn read(&mut self, record: &mut StringRecord) -> Result<bool, Stop> {
        match self.reader.read_record(record) {
            Ok(true) => {
                self.records += 1;
                self.literal.see(record, self.delimiter);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(self.csv_failure(e)),
        }
    }

    /// A record as a row, as the in-memory path builds it.
    pub(crate) fn row(&self, record: &StringRecord) -> Row {
        self.names
            .iter()
            .zip(record.iter())
            .map(|(n, cell)| (n.clone(), cell_value(cell.trim())))
            .collect()
    }

    /// The value of column `index` in `record` (null when absent).
    pub(crate) fn cell(record: &StringRecord, index: Option<usize>) -> Value {
        index
            .and_then(|i| record.get(i))
            .map_or(Value::Null, |cell| cell_value(cell.trim()))
    }

    /// Ends the stream once every record is read: sniffed text that turned
    /// out to have no records, or that might still be a JSON or Python
    /// literal, is left to the in-memory path.
    pub(crate) fn finish(self) -> Result<(), Stop> {
        if self.auto && (self.records == 0 || !self.literal.ruled_out) {
            return Err(Stop::InMemory);
        }
        Ok(())
    }

    /// A failure, unless the text is sniffed and might not be CSV at all: the
    /// in-memory path then decides what the input is.
    pub(crate) fn fail(&self, e: ToolFailure) -> Stop {
        if self.auto && !self.literal.ruled_out {
            Stop::InMemory
        } else {
            Stop::Fail(e)
        }
    }

    /// A reader error, naming the file and the line.
    fn csv_failure(&self, e: csv::Error) -> Stop {
        let at = match e.position() {
            Some(p) => format!("file `{}` line {}", self.path, p.line()),
            None => format!("file `{}`", self.path),
        };
        let unparseable = |formats, reason| ToolFailure::Unparseable {
            name: self.name.clone(),
            formats,
            reason,
        };
        let failure = match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => unparseable(
                "text",
                format!("{at} is not UTF-8 (field {})", err.field() + 1),
            ),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => unparseable(
                "CSV",
                format!(
                    "{at}: found a record with {len} fields where the header has {expected_len} \
                     (a cell holding the delimiter `{}` or a line break must be quoted)",
                    char::from(self.delimiter).escape_default()
                ),
            ),
            _ => {
                let text = e.to_string();
                match e.into_kind() {
                    csv::ErrorKind::Io(source) => ToolFailure::Io {
                        name: self.name.clone(),
                        path: self.path.clone(),
                        source,
                    },
                    _ => unparseable("CSV", format!("{at}: {text}")),
                }
            }
        };
        self.fail(failure)
    }
}

/// Tracks whether sniffed text could still be a JSON or Python scalar (a
/// number, `true`, `None`, ... possibly with signs and line continuations),
/// which the in-memory path would take before trying CSV. Such text has at
/// most one field with letters or digits and no characters other than
/// letters, digits, whitespace and `_ + - . \`, and never holds `,` `;` `|`.
#[derive(Debug, Default)]
struct LiteralCheck {
    alnum_fields: usize,
    ruled_out: bool,
}

impl LiteralCheck {
    fn see(&mut self, record: &StringRecord, delimiter: u8) {
        if self.ruled_out {
            return;
        }
        if record.len() > 1 && delimiter != b'\t' {
            self.ruled_out = true;
            return;
        }
        for field in record {
            let allowed = |c: char| {
                c.is_alphanumeric()
                    || c.is_whitespace()
                    || matches!(c, '_' | '+' | '-' | '.' | '\\')
            };
            if !field.chars().all(allowed) {
                self.ruled_out = true;
                return;
            }
            if field.chars().any(char::is_alphanumeric) {
                self.alnum_fields += 1;
                if self.alnum_fields > 1 {
                    self.ruled_out = true;
                    return;
                }
            }
        }
    }
}

/// What the first lines of a file say.
#[derive(Debug)]
struct Sniffed {
    /// The length of the leading byte-order marks (skipped, as `trim_start_matches` does).
    bom_len: u64,
    delimiter: u8,
    /// The first non-whitespace character of the text and the one after it.
    lead: [Option<char>; 2],
}

impl Sniffed {
    /// Whether sniffed text may be CSV: it is not blank and does not start
    /// like JSON, JSON Lines or a Python literal (a bracket, a quote, a
    /// prefixed string such as `r'..'`, or a line continuation).
    fn may_be_csv(&self) -> bool {
        !matches!(
            self.lead,
            [None, _]
                | [Some('{' | '[' | '(' | '"' | '\'' | '\\'), _]
                | [Some('r' | 'R' | 'u' | 'U' | 'b' | 'B'), Some('"' | '\'')]
        )
    }
}

/// Reads the file from the start until its first [`SNIFF_LINES`] non-blank
/// lines are seen, a buffer at a time (a long line costs no memory), and
/// computes what [`crate::input::sniff_delimiter`] computes on the whole text.
fn sniff(file: &File, buffer: usize) -> std::io::Result<Sniffed> {
    let mut reader = BufReader::with_capacity(buffer, file);
    let mut s = Sniffer::default();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            s.byte(b);
            if s.lines.len() >= SNIFF_LINES {
                break;
            }
        }
        reader.consume(n);
        if s.lines.len() >= SNIFF_LINES {
            break;
        }
    }
    s.end();
    Ok(Sniffed {
        bom_len: s.bom_len,
        delimiter: pick_delimiter(&s.lines),
        lead: s.lead,
    })
}

const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// The sniffer's state: leading byte-order marks, a UTF-8 decoder, and the
/// delimiter counts of the current line.
#[derive(Debug, Default)]
struct Sniffer {
    past_bom: bool,
    bom_len: u64,
    bom_matched: usize,
    utf8: [u8; 4],
    utf8_have: usize,
    utf8_need: usize,
    lead: [Option<char>; 2],
    quoted: bool,
    counts: DelimiterCounts,
    non_blank: bool,
    lines: Vec<DelimiterCounts>,
}

impl Sniffer {
    fn byte(&mut self, b: u8) {
        if !self.past_bom {
            if BOM.get(self.bom_matched) == Some(&b) {
                self.bom_matched += 1;
                if self.bom_matched == BOM.len() {
                    self.bom_len += BOM.len() as u64;
                    self.bom_matched = 0;
                }
                return;
            }
            self.past_bom = true;
            for &m in BOM.iter().take(self.bom_matched) {
                self.decode(m);
            }
        }
        self.decode(b);
    }

    fn decode(&mut self, b: u8) {
        if self.utf8_need > 0 {
            if b & 0xc0 == 0x80 {
                self.utf8[self.utf8_have] = b;
                self.utf8_have += 1;
                if self.utf8_have == self.utf8_need {
                    self.utf8_need = 0;
                    let c = std::str::from_utf8(&self.utf8[..self.utf8_have])
                        .ok()
                        .and_then(|text| text.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.char(c);
                }
                return;
            }
            // A truncated sequence: invalid, and `b` starts afresh.
            self.utf8_need = 0;
            self.char(char::REPLACEMENT_CHARACTER);
        }
        let need = match b {
            0x00..=0x7f => return self.char(char::from(b)),
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return self.char(char::REPLACEMENT_CHARACTER),
        };
        self.utf8[0] = b;
        self.utf8_have = 1;
        self.utf8_need = need;
    }

    fn char(&mut self, c: char) {
        match self.lead {
            [None, _] if !c.is_whitespace() => self.lead[0] = Some(c),
            [Some(_), None] => self.lead[1] = Some(c),
            _ => {}
        }
        if c == '\n' {
            self.end_line();
            return;
        }
        if c == '"' {
            self.quoted = !self.quoted;
        } else if !self.quoted
            && let Some(i) = DELIMITERS.iter().position(|d| char::from(*d) == c)
        {
            self.counts[i] += 1;
        }
        if !c.is_whitespace() {
            self.non_blank = true;
        }
    }

    fn end_line(&mut self) {
        if self.non_blank && self.lines.len() < SNIFF_LINES {
            self.lines.push(self.counts);
        }
        self.quoted = false;
        self.counts = DelimiterCounts::default();
        self.non_blank = false;
    }

    /// The end of the file (or of sniffing).
    fn end(&mut self) {
        if !self.past_bom {
            self.past_bom = true;
            for &m in BOM.iter().take(self.bom_matched) {
                self.decode(m);
            }
        }
        if self.utf8_need > 0 {
            self.utf8_need = 0;
            self.char(char::REPLACEMENT_CHARACTER);
        }
        self.end_line();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::input::sniff_delimiter;
    use std::io::Write;

    fn sniff_text(bytes: &[u8], buffer: usize) -> Sniffed {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        sniff(&f, buffer).unwrap()
    }

    #[test]
    fn the_file_sniffer_agrees_with_the_text_sniffer() {
        let cases: &[&str] = &[
            "",
            "\n\n",
            "a,b\n1,2\n",
            "a;b\n1;2",
            "a\tb;c\n1\t2;3\n4\t5\n",
            "a|b\n\"x|y\"|2\n",
            "\u{feff}\u{feff}a;b,c\n1;2,3\n1;2\n",
            "name\nann\nbob",
            "a,b\n\u{a0}\n1,2\n\u{3000}\r\n3,4\r\n",
            "a,b\n\"multi\nline, cell\",2\n",
            "é;ü,x\n1;2,3\n",
            "x,y\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1;2;3;4;5\n",
        ];
        for text in cases {
            for buffer in [1, 2, 3, 7, 64 << 10] {
                let got = sniff_text(text.as_bytes(), buffer);
                assert_eq!(
                    got.delimiter,
                    sniff_delimiter(text.trim_start_matches('\u{feff}')),
                    "{text:?} with a {buffer}-byte buffer"
                );
                let bom = text.len() - text.trim_start_matches('\u{feff}').len();
                assert_eq!(got.bom_len, bom as u64, "{text:?}");
                let mut lead = text.trim_start_matches('\u{feff}').trim_start().chars();
                assert_eq!(got.lead, [lead.next(), lead.next()], "{text:?}");
            }
        }
    }

    #[test]
    fn text_that_may_not_be_csv_is_left_to_the_in_memory_path() {
        for text in ["{\"a\": 1}", " [1]", "('a',)", "r'x'\n", "\"s\"", "", " \n"] {
            assert!(!sniff_text(text.as_bytes(), 8).may_be_csv(), "{text:?}");
        }
        for text in ["a,b\n1,2", "42", "rx,y\n1,2"] {
            assert!(sniff_text(text.as_bytes(), 8).may_be_csv(), "{text:?}");
        }
    }

    #[test]
    fn literal_check() {
        let check = |records: &[&[&str]], delimiter| {
            let mut c = LiteralCheck::default();
            for r in records {
                c.see(&StringRecord::from(r.to_vec()), delimiter);
            }
            c.ruled_out
        };
        assert!(!check(&[&["42"]], b','));
        assert!(!check(&[&["-"], &["5"]], b','));
        assert!(!check(&[&["42 \\"], &["\\"]], b','));
        assert!(!check(&[&["-", "5"]], b'\t'));
        assert!(check(&[&["name"], &["ann"]], b','));
        assert!(check(&[&["a", "b"]], b','));
        assert!(check(&[&["a:b"]], b','));
    }
}
