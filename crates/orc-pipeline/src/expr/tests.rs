use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn scope() -> Map<String, Value> {
    let v = json!({
        "flag": "yes",
        "count": 5,
        "x": 3,
        "f": 2.5,
        "done": false,
        "name": "Build Step",
        "items": [10, 20, 30, 40, 50],
        "words": ["b", "a", "c"],
        "empty": [],
        "d": {"k": 1, "other": "v"},
        "step1": {"result": {"size": 42, "files": [{"name": "a.txt"}, {"name": "b.txt"}]}},
        "check": {"result": {"stdout": "ok\nerror: disk full\n", "code": 1}},
        "nothing": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn ev_in(src: &str, scope: &Map<String, Value>) -> Result<Value, ExprError> {
    Expr::parse(src)?.eval(scope)
}

fn ev(src: &str) -> Value {
    match ev_in(src, &scope()) {
        Ok(v) => v,
        Err(e) => panic!("`{src}` failed: {e}"),
    }
}

fn err(src: &str) -> ExprError {
    match ev_in(src, &scope()) {
        Ok(v) => panic!("`{src}` unexpectedly gave {v}"),
        Err(e) => e,
    }
}

fn parse_err(src: &str) -> ExprError {
    match Expr::parse(src) {
        Ok(e) => panic!("`{src}` unexpectedly parsed: {e:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn check(src: &str, expected: Value) {
    assert_eq!(ev(src), expected, "expression: {src}");
}

#[test]
fn expr_is_send_sync_clone_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<Expr>();
    assert_traits::<ExprError>();
}

#[test]
fn literals() {
    check("1", json!(1));
    check("-7", json!(-7));
    check("1.5", json!(1.5));
    check("1e3", json!(1000.0));
    check("2.5e-1", json!(0.25));
    check(".5", json!(0.5));
    check("0x1F + 0o17 + 0b11 + 1_000", json!(31 + 15 + 3 + 1000));
    check(
        "'a\\tb\\n\\'q\\' \\x41\\u00e9\\\\'",
        json!("a\tb\n'q' Aé\\"),
    );
    check(r#""double \"quoted\"""#, json!("double \"quoted\""));
    check("r'raw\\n'", json!("raw\\n"));
    check("'abc' 'def'", json!("abcdef"));
    check("'''tri'ple'''", json!("tri'ple"));
    check("True", json!(true));
    check("true", json!(true));
    check("False == false", json!(true));
    check("None", Value::Null);
    check("null", Value::Null);
    check("none", Value::Null);
    check("[1, 'a', None]", json!([1, "a", null]));
    check("(1, 2)", json!([1, 2]));
    check("(1,)", json!([1]));
    check("()", json!([]));
    check("1, 2", json!([1, 2]));
    check("{'k': 1, \"j\": [2]}", json!({"k": 1, "j": [2]}));
    check("{}", json!({}));
    check("{'a': 1, 'a': 2}", json!({"a": 2}));
    check("[1, 2,]", json!([1, 2]));
    check("1 # trailing comment", json!(1));
    check("1 +\n 2", json!(3));
    assert!(matches!(
        parse_err("{1: 2}"),
        ExprError::Syntax { offset: 1, .. }
    ));
    assert!(matches!(err("{count: 2}"), ExprError::Type { .. }));
    assert!(matches!(parse_err("007"), ExprError::Syntax { .. }));
    assert!(matches!(
        parse_err("99999999999999999999"),
        ExprError::Syntax { .. }
    ));
    assert!(matches!(parse_err("1e999"), ExprError::Syntax { .. }));
    assert!(matches!(
        parse_err("'abc"),
        ExprError::Syntax { offset: 0, .. }
    ));
    assert!(matches!(parse_err("1j"), ExprError::Unsupported { .. }));
}

#[test]
fn ints_stay_ints_and_floats_stay_floats() {
    assert!(ev("1 + 2").is_i64());
    assert!(ev("count * 2").is_i64());
    assert!(ev("1 + 2.0").is_f64());
    assert!(ev("4 / 2").is_f64());
    check("4 / 2", json!(2.0));
    assert!(ev("7 // 2").is_i64());
    assert!(ev("7.0 // 2").is_f64());
}

#[test]
fn precedence() {
    check("1 + 2 * 3", json!(7));
    check("(1 + 2) * 3", json!(9));
    check("10 - 2 - 3", json!(5));
    check("2 * 3 % 4", json!(2));
    check("-2 ** 2", json!(-4));
    check("(-2) ** 2", json!(4));
    check("2 ** 3 ** 2", json!(512));
    check("2 ** -1", json!(0.5));
    check("-x ** 2", json!(-9));
    check("not 1 == 2", json!(true));
    check("not True or True", json!(true));
    check("True or False and False", json!(true));
    check("(True or False) and False", json!(false));
    check("1 + 2 if False else 3", json!(3));
    check("1 if False else 2 if False else 3", json!(3));
    check("1 if True else 2 if False else 3", json!(1));
    check("1 < 2 == True", json!(false));
    check("- - 3", json!(3));
    check("+True", json!(1));
    check("1 + 2 < 4 and 'a' in 'cat'", json!(true));
    check("not flag == 'no'", json!(true));
    check("d.k + step1.result.size * 2", json!(85));
    check("items[1] ** 2", json!(400));
    check("-items[0]", json!(-10));
}

#[test]
fn chained_comparisons() {
    check("1 < x < 5", json!(true));
    check("1 < x < 3", json!(false));
    check("5 > x >= 3 > 1", json!(true));
    check("1 == 1 == 1.0", json!(true));
    check("1 < 2 > 0", json!(true));
    check("x == 3 != 4", json!(true));
    // Later links are not evaluated once an earlier one is false.
    check("2 < 1 < missing", json!(false));
    check("2 < 1 < 1 / 0", json!(false));
    assert!(matches!(
        err("1 < 2 < missing"),
        ExprError::UnknownName { .. }
    ));
}

#[test]
fn short_circuit() {
    check("False and missing", json!(false));
    check("True or missing", json!(true));
    check("done and 1 / 0", json!(false));
    check("count or undefined_thing", json!(5));
    check("True if True else 1 / 0", json!(true));
    check("1 / 0 if False else 2", json!(2));
    check("0 or 'x'", json!("x"));
    check("'' and 1", json!(""));
    check("1 and 2", json!(2));
    check("0 or ''", json!(""));
    check("None or [] or 'last'", json!("last"));
    check("1 and 2 and 0 and missing", json!(0));
    assert!(matches!(
        err("missing or True"),
        ExprError::UnknownName { name } if name == "missing"
    ));
    assert!(matches!(err("True and 1 / 0"), ExprError::DivisionByZero));
}

#[test]
fn injection_is_impossible() {
    let mut s = Map::new();
    s.insert("flag".into(), json!("x\" or \"1"));
    let e = Expr::parse("flag == 'yes'").unwrap();
    assert_eq!(e.eval(&s).unwrap(), json!(false));
    assert!(!truthy(&e.eval(&s).unwrap()));
    s.insert("flag".into(), json!("x' or '1"));
    assert_eq!(e.eval(&s).unwrap(), json!(false));
    s.insert("flag".into(), json!("__import__('os').system('true')"));
    assert_eq!(e.eval(&s).unwrap(), json!(false));
    s.insert("flag".into(), json!("yes"));
    assert_eq!(e.eval(&s).unwrap(), json!(true));
}

#[test]
fn attribute_index_and_slice_access() {
    check("step1.result.size > 10", json!(true));
    check("step1.result.files[1].name", json!("b.txt"));
    check("step1['result']['files'][-1]['name']", json!("b.txt"));
    check("step1.result['size']", json!(42));
    check("d['k']", json!(1));
    check("items[0]", json!(10));
    check("items[-1]", json!(50));
    check("items[True]", json!(20));
    check("items[1:3]", json!([20, 30]));
    check("items[::2]", json!([10, 30, 50]));
    check("items[::-1]", json!([50, 40, 30, 20, 10]));
    check("items[-2:]", json!([40, 50]));
    check("items[:-3]", json!([10, 20]));
    check("items[10:]", json!([]));
    check("items[-100:2]", json!([10, 20]));
    check("items[3:0:-1]", json!([40, 30, 20]));
    check("items[None:2]", json!([10, 20]));
    check("'hello'[1:3]", json!("el"));
    check("'hello'[::-1]", json!("olleh"));
    check("'héllo'[1]", json!("é"));
    check("'hello'[-1]", json!("o"));
    check("[[1, 2], [3]][0][1]", json!(2));
    check("{'a': {'b': 7}}.a.b", json!(7));
    check("'error' in check.result.stdout", json!(true));
    check("'k' in d", json!(true));
    check("'zz' not in d", json!(true));

    assert_eq!(
        err("step1.result.missing"),
        ExprError::MissingKey {
            key: "missing".into()
        }
    );
    assert_eq!(
        err("d['nope']"),
        ExprError::MissingKey { key: "nope".into() }
    );
    assert!(err("step1.result.missing").to_string().contains("missing"));
    assert_eq!(
        err("items[5]"),
        ExprError::IndexOutOfRange { index: 5, len: 5 }
    );
    assert_eq!(
        err("items[-6]"),
        ExprError::IndexOutOfRange { index: -6, len: 5 }
    );
    assert!(matches!(err("''[0]"), ExprError::IndexOutOfRange { .. }));
    assert!(matches!(err("items['a']"), ExprError::Type { .. }));
    assert!(matches!(err("items[1.0]"), ExprError::Type { .. }));
    assert!(matches!(err("count[0]"), ExprError::Type { .. }));
    assert!(matches!(err("items[::0]"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("items[1.5:]"), ExprError::Type { .. }));
    assert!(matches!(err("count.x"), ExprError::NoAttribute { .. }));
    assert!(err("count.x").to_string().contains("'x'"));
    assert!(matches!(err("d[[1]]"), ExprError::Type { .. }));
}

#[test]
fn unknown_name_error_names_the_variable() {
    let e = err("flag == 'yes' and mystery > 1");
    assert_eq!(
        e,
        ExprError::UnknownName {
            name: "mystery".into()
        }
    );
    assert!(e.to_string().contains("mystery"));
    assert_eq!(e.offset(), None);
}

#[test]
fn arithmetic() {
    check("1 + 1.5", json!(2.5));
    check("'ab' + 'cd'", json!("abcd"));
    check("[1] + [2, 3]", json!([1, 2, 3]));
    check("'ab' * 3", json!("ababab"));
    check("2 * 'ab'", json!("abab"));
    check("'ab' * 0", json!(""));
    check("'ab' * -2", json!(""));
    check("[0] * 3", json!([0, 0, 0]));
    check("3 * [1, 2]", json!([1, 2, 1, 2, 1, 2]));
    check("True + True", json!(2));
    check("7 / 2", json!(3.5));
    check("2 ** 10", json!(1024));
    check("2.0 ** 0.5 > 1.41", json!(true));
    check("10 - 2.5", json!(7.5));
    check("-f", json!(-2.5));
    assert!(matches!(
        err("9223372036854775807 + 1"),
        ExprError::Overflow { .. }
    ));
    assert!(matches!(
        err("-9223372036854775807 - 2"),
        ExprError::Overflow { .. }
    ));
    assert!(matches!(
        err("3037000500 * 3037000500"),
        ExprError::Overflow { .. }
    ));
    assert!(matches!(err("2 ** 64"), ExprError::Overflow { .. }));
    assert!(matches!(err("1e308 * 10"), ExprError::Overflow { .. }));
    assert!(matches!(err("'a' + 1"), ExprError::Type { .. }));
    assert!(matches!(err("'a' - 'b'"), ExprError::Type { .. }));
    assert!(matches!(err("'a' * 'b'"), ExprError::Type { .. }));
    assert!(matches!(err("'a' * 2.0"), ExprError::Type { .. }));
    assert!(matches!(err("[1] * [1]"), ExprError::Type { .. }));
    assert!(matches!(err("None + 1"), ExprError::Type { .. }));
    assert!(matches!(err("-'a'"), ExprError::Type { .. }));
    assert!(matches!(err("1 / 0"), ExprError::DivisionByZero));
    assert!(matches!(err("1.0 / 0.0"), ExprError::DivisionByZero));
    assert!(matches!(err("0 ** -1"), ExprError::DivisionByZero));
    assert!(matches!(err("(-8) ** 0.5"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("flag % 2"), ExprError::Type { .. }));
}

#[test]
fn python_floor_division_and_modulo() {
    check("7 // 2", json!(3));
    check("-7 // 2", json!(-4));
    check("7 // -2", json!(-4));
    check("-7 // -2", json!(3));
    check("-8 // 2", json!(-4));
    check("7 % 3", json!(1));
    check("-7 % 3", json!(2));
    check("7 % -3", json!(-2));
    check("-7 % -3", json!(-1));
    check("-6 % 3", json!(0));
    check("-7.5 // 2", json!(-4.0));
    check("-7.5 % 2", json!(0.5));
    check("7.5 % -2", json!(-0.5));
    check("5 % 2.5", json!(0.0));
    check("-9223372036854775807 - 1 // 1", json!(i64::MIN));
    check("(-9223372036854775807 - 1) % -1", json!(0));
    assert!(matches!(
        err("(-9223372036854775807 - 1) // -1"),
        ExprError::Overflow { .. }
    ));
    assert!(matches!(err("5 // 0"), ExprError::DivisionByZero));
    assert!(matches!(err("5 % 0"), ExprError::DivisionByZero));
    assert!(matches!(err("5.0 // 0"), ExprError::DivisionByZero));
    assert!(matches!(err("5 % 0.0"), ExprError::DivisionByZero));
}

#[test]
fn comparisons_and_membership() {
    check("1 == 1.0", json!(true));
    check("'1' == 1", json!(false));
    check("None == 0", json!(false));
    check("[1, 2] == [1, 2.0]", json!(true));
    check("{'a': 1, 'b': 2} == {'b': 2, 'a': 1}", json!(true));
    check("[1, 2] < [1, 3]", json!(true));
    check("[1, 2] < [1, 2, 0]", json!(true));
    check("'abc' < 'abd'", json!(true));
    check("'B' < 'a'", json!(true));
    check("2 < 2.5", json!(true));
    check("9007199254740993 > 9007199254740992.0", json!(true));
    check("True > 0", json!(true));
    check("'a' in 'cat'", json!(true));
    check("2 in [1, 2]", json!(true));
    check("2.0 in [1, 2]", json!(true));
    check("'2' in [1, 2]", json!(false));
    check("'k' in {'k': 1}", json!(true));
    check("1 in {'1': 1}", json!(false));
    check("3 not in items", json!(true));
    check("nothing is None", json!(true));
    check("done is False", json!(true));
    check("done is not None", json!(true));
    check("0 is False", json!(false));
    check("1 != 2", json!(true));
    assert!(matches!(err("1 < 'a'"), ExprError::Type { .. }));
    assert!(matches!(err("None < 1"), ExprError::Type { .. }));
    assert!(matches!(err("{} < {}"), ExprError::Type { .. }));
    assert!(matches!(err("[1, 'a'] < [1, 2]"), ExprError::Type { .. }));
    assert!(matches!(err("1 in 'abc'"), ExprError::Type { .. }));
    assert!(matches!(err("1 in 5"), ExprError::Type { .. }));
    assert!(matches!(err("[1] in {}"), ExprError::Type { .. }));
    assert!(matches!(err("1 is 1"), ExprError::Type { .. }));
}

#[test]
fn builtins() {
    // len
    check("len(items)", json!(5));
    check("len('héllo')", json!(5));
    check("len(d)", json!(2));
    check("len([])", json!(0));
    assert!(matches!(err("len(5)"), ExprError::Type { .. }));
    assert!(matches!(err("len()"), ExprError::Type { .. }));
    assert!(matches!(err("len(items, items)"), ExprError::Type { .. }));
    // str
    check("str(12)", json!("12"));
    check("str()", json!(""));
    check("str('x')", json!("x"));
    check("str(True)", json!("True"));
    check("str(None)", json!("None"));
    check("str(1.0)", json!("1.0"));
    check("str(0.1)", json!("0.1"));
    check("str(-2.5)", json!("-2.5"));
    check("str(1e16)", json!("1e+16"));
    check("str(1.5e-7)", json!("1.5e-07"));
    check("str(0.0001)", json!("0.0001"));
    check("str(123456.789)", json!("123456.789"));
    check(
        "str([1, 'a', None, True, 1.5])",
        json!("[1, 'a', None, True, 1.5]"),
    );
    check(
        "str({'k': 1, 'l': [\"it's\"]})",
        json!("{'k': 1, 'l': [\"it's\"]}"),
    );
    check("str(['a\\nb'])", json!("['a\\nb']"));
    // Strings inside containers are escaped as CPython escapes them, like
    // the templates' `{{ list }}`: not only control characters.
    check(
        "str(['\\xa0\\u200b\\xad\\x7f', '\\u2028'])",
        json!("['\\xa0\\u200b\\xad\\x7f', '\\u2028']"),
    );
    // int
    check("int('12')", json!(12));
    check("int(' -12 ')", json!(-12));
    check("int('1_000')", json!(1000));
    check("int('ff', 16)", json!(255));
    check("int('0x1f', 0)", json!(31));
    check("int(3.9)", json!(3));
    check("int(-3.9)", json!(-3));
    check("int(True)", json!(1));
    check("int()", json!(0));
    assert!(matches!(err("int('abc')"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("int('1.5')"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("int('')"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("int(None)"), ExprError::Type { .. }));
    assert!(matches!(
        err("int('1', 99)"),
        ExprError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("int('99999999999999999999')"),
        ExprError::Overflow { .. }
    ));
    assert!(matches!(err("int(1e300)"), ExprError::Overflow { .. }));
    // float
    check("float('1.5')", json!(1.5));
    check("float(' 2 ')", json!(2.0));
    check("float('1e3')", json!(1000.0));
    check("float(3)", json!(3.0));
    check("float()", json!(0.0));
    assert!(matches!(err("float('x')"), ExprError::InvalidValue { .. }));
    assert!(matches!(
        err("float('nan')"),
        ExprError::InvalidValue { .. }
    ));
    assert!(matches!(err("float([])"), ExprError::Type { .. }));
    // bool
    check("bool(1)", json!(true));
    check("bool('')", json!(false));
    check("bool([0])", json!(true));
    check("bool()", json!(false));
    // abs
    check("abs(-3)", json!(3));
    check("abs(-2.5)", json!(2.5));
    assert!(matches!(err("abs('a')"), ExprError::Type { .. }));
    assert!(matches!(
        err("abs(-9223372036854775807 - 1)"),
        ExprError::Overflow { .. }
    ));
    // min / max
    check("min(items)", json!(10));
    check("max(items)", json!(50));
    check("min(3, 1, 2)", json!(1));
    check("max(3, 1.5, 2)", json!(3));
    check("max('abc')", json!("c"));
    check("min(words)", json!("a"));
    check("max(d)", json!("other"));
    assert!(matches!(err("min([])"), ExprError::InvalidValue { .. }));
    assert!(matches!(err("max()"), ExprError::Type { .. }));
    assert!(matches!(err("max(1, 'a')"), ExprError::Type { .. }));
    // round
    check("round(2.5)", json!(2));
    check("round(3.5)", json!(4));
    check("round(-2.5)", json!(-2));
    check("round(0.5)", json!(0));
    check("round(1.4)", json!(1));
    check("round(7)", json!(7));
    assert!(ev("round(1.6)").is_i64());
    check("round(2.675, 2)", json!(2.67));
    check("round(0.125, 2)", json!(0.12));
    check("round(0.375, 2)", json!(0.38));
    check("round(1.5, 0)", json!(2.0));
    check("round(1234.5678, -2)", json!(1200.0));
    check("round(1250, -2)", json!(1200));
    check("round(1350, -2)", json!(1400));
    check("round(-1250, -2)", json!(-1200));
    check("round(17, 3)", json!(17));
    check("round(2.5, None)", json!(2));
    assert!(ev("round(2.5, 1)").is_f64());
    assert!(matches!(err("round('a')"), ExprError::Type { .. }));
    assert!(matches!(err("round(1e300)"), ExprError::Overflow { .. }));
    // sorted
    check("sorted(words)", json!(["a", "b", "c"]));
    check("sorted([3, 1.5, 2, True])", json!([true, 1.5, 2, 3]));
    check("sorted([[2], [1, 5], [1]])", json!([[1], [1, 5], [2]]));
    check("sorted('cab')", json!(["a", "b", "c"]));
    check("sorted([])", json!([]));
    check("sorted([1, 1.0])", json!([1, 1.0]));
    assert!(matches!(err("sorted([1, 'a'])"), ExprError::Type { .. }));
    assert!(matches!(err("sorted(3)"), ExprError::Type { .. }));
    // sum
    check("sum(items)", json!(150));
    check("sum([1, 2.5])", json!(3.5));
    check("sum([], 10)", json!(10));
    check("sum([[1], [2]], [])", json!([1, 2]));
    assert!(matches!(err("sum(['a', 'b'])"), ExprError::Type { .. }));
    assert!(matches!(err("sum(['a'], '')"), ExprError::Type { .. }));
    assert!(matches!(
        err("sum([9223372036854775807, 1])"),
        ExprError::Overflow { .. }
    ));
    // any / all
    check("any([0, '', 3])", json!(true));
    check("any([])", json!(false));
    check("all([1, 'a'])", json!(true));
    check("all([1, 0])", json!(false));
    check("all([])", json!(true));
    check("any(d)", json!(true));
    assert!(matches!(err("any(1)"), ExprError::Type { .. }));
}

#[test]
fn methods() {
    check("name.startswith('Build')", json!(true));
    check("name.startswith(('x', 'Bu'))", json!(true));
    check("name.endswith('Step')", json!(true));
    check("name.lower()", json!("build step"));
    check("name.upper()", json!("BUILD STEP"));
    check("'  pad '.strip()", json!("pad"));
    check("'  pad '.lstrip()", json!("pad "));
    check("'  pad '.rstrip()", json!("  pad"));
    check("'xxpadxx'.strip('x')", json!("pad"));
    check("'a,b,,c'.split(',')", json!(["a", "b", "", "c"]));
    check("'a,b,c'.split(',', 1)", json!(["a", "b,c"]));
    check("'  a  b c '.split()", json!(["a", "b", "c"]));
    check("'  a  b c '.split(None, 1)", json!(["a", "b c "]));
    check("''.split()", json!([]));
    check("'a-b-c'.replace('-', '+')", json!("a+b+c"));
    check("'a-b-c'.replace('-', '', 1)", json!("ab-c"));
    check("'ab'.replace('', '.')", json!(".a.b."));
    check("'héllo'.find('l')", json!(2));
    check("'hello'.find('z')", json!(-1));
    check("'banana'.count('an')", json!(2));
    check("'123'.isdigit()", json!(true));
    check("'12a'.isdigit()", json!(false));
    check("''.isdigit()", json!(false));
    check("'abc'.isalpha()", json!(true));
    check("'ab1'.isalpha()", json!(false));
    check("'42'.isnumeric()", json!(true));
    check("\"they're bill's\".title()", json!("They'Re Bill'S"));
    check("'Straße'.casefold()", json!("strasse"));
    check("d.get('k')", json!(1));
    check("d.get('zz')", Value::Null);
    check("d.get('zz', 7)", json!(7));
    check("d.keys()", json!(["k", "other"]));
    check("d.values()", json!([1, "v"]));
    check("d.items()", json!([["k", 1], ["other", "v"]]));
    check("[1, 2, 1].count(1)", json!(2));
    check("items.index(30)", json!(2));
    check("check.result.stdout.lower().startswith('ok')", json!(true));
    assert!(matches!(
        err("items.index(31)"),
        ExprError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("'a'.split('')"),
        ExprError::InvalidValue { .. }
    ));
    assert!(matches!(err("name.startswith(1)"), ExprError::Type { .. }));
    assert!(matches!(err("name.lower(1)"), ExprError::Type { .. }));
    // Allowed names on the wrong type.
    assert!(matches!(
        err("items.upper()"),
        ExprError::NoAttribute { .. }
    ));
    assert!(matches!(
        err("name.get('a')"),
        ExprError::NoAttribute { .. }
    ));
    assert!(matches!(err("d.index(1)"), ExprError::NoAttribute { .. }));
    assert!(matches!(
        err("count.lower()"),
        ExprError::NoAttribute { .. }
    ));
    // A key named like a method is still reachable as an attribute.
    let mut s = Map::new();
    s.insert("r".into(), json!({"items": 3, "count": 4}));
    assert_eq!(ev_in("r.items + r.count", &s).unwrap(), json!(7));
}

#[test]
fn refused_constructs() {
    let unsupported = |src: &str| match parse_err(src) {
        ExprError::Unsupported { .. } => {}
        other => panic!("`{src}` gave {other:?}"),
    };
    unsupported("lambda: 1");
    unsupported("(lambda x: x)(1)");
    unsupported("x = 1");
    unsupported("(x := 1)");
    unsupported("x += 1");
    unsupported("f'{x}'");
    unsupported("b'x'");
    unsupported("[*items]");
    unsupported("len(*items)");
    unsupported("sorted(items, reverse=True)");
    unsupported("'%s' % x");
    unsupported("[i for i in items]");
    unsupported("any(i > 1 for i in items)");
    unsupported("{k: 1 for k in d}");
    unsupported("{1, 2}");
    unsupported("x | 1");
    unsupported("x & 1");
    unsupported("~x");
    unsupported("x << 1");
    unsupported("yield x");
    let c = parse_err("[i for i in items]");
    assert!(c.to_string().contains("comprehensions"), "{c}");
    assert!(c.to_string().contains("not supported"), "{c}");

    assert_eq!(
        parse_err("__import__('os')"),
        ExprError::PrivateName {
            offset: 0,
            name: "__import__".into()
        }
    );
    assert!(matches!(parse_err("_x"), ExprError::PrivateName { .. }));
    assert!(matches!(
        parse_err("d.__class__"),
        ExprError::PrivateName { offset: 2, .. }
    ));
    assert!(matches!(
        parse_err("d._private"),
        ExprError::PrivateName { .. }
    ));
    assert!(matches!(
        parse_err("''.__class__.__mro__"),
        ExprError::PrivateName { .. }
    ));
    assert_eq!(
        parse_err("eval('1')"),
        ExprError::NotAllowed {
            offset: 0,
            name: "eval".into()
        }
    );
    assert!(matches!(
        parse_err("open('f')"),
        ExprError::NotAllowed { .. }
    ));
    assert!(matches!(
        parse_err("name.format(1)"),
        ExprError::NotAllowed { offset: 5, .. }
    ));
    assert!(matches!(parse_err("items[0](1)"), ExprError::Syntax { .. }));
    assert!(matches!(parse_err("(len)(x)"), ExprError::Syntax { .. }));
    assert!(matches!(parse_err("len"), ExprError::Syntax { .. }));
    assert!(matches!(parse_err("import os"), ExprError::Syntax { .. }));
    assert!(matches!(parse_err("x; y"), ExprError::Syntax { .. }));
    assert!(matches!(parse_err("!x"), ExprError::Syntax { .. }));
    assert!(matches!(
        parse_err("x ⊕ y"),
        ExprError::Syntax { offset: 2, .. }
    ));
}

#[test]
fn parse_error_offsets() {
    assert_eq!(parse_err("1 +").offset(), Some(3));
    assert_eq!(parse_err("flag == ").offset(), Some(8));
    assert_eq!(parse_err("(1 + 2").offset(), Some(6));
    assert_eq!(parse_err("1 + )").offset(), Some(4));
    assert_eq!(parse_err("a b").offset(), Some(2));
    assert_eq!(parse_err("x == 'unterminated").offset(), Some(5));
    assert_eq!(parse_err("x if y").offset(), Some(6));
    assert_eq!(parse_err("").offset(), Some(0));
    assert_eq!(parse_err("   ").offset(), Some(3));
    assert_eq!(parse_err("f(x=1)").offset(), Some(0));
    assert_eq!(parse_err("len(x=1)").offset(), Some(4));
    assert_eq!(parse_err("a.b._c").offset(), Some(4));
    assert_eq!(parse_err("'é' $").offset(), Some(5));
    assert_eq!(parse_err("x = 1").offset(), Some(2));
    let e = parse_err("1 +");
    assert!(e.to_string().contains("byte 3"), "{e}");
    // The first error in source order wins, even if it is lexical later on.
    assert_eq!(parse_err("a b 'open").offset(), Some(2));
    assert_eq!(err("1/0").offset(), None);
}

#[test]
fn names_lists_free_variables() {
    let e = Expr::parse("flag == 'yes' and count > 3 or flag in d.keys()").unwrap();
    assert_eq!(e.names(), vec!["flag", "count", "d"]);
    let e = Expr::parse("len(items) >= 2 and sorted(words)[0] == str(x)").unwrap();
    assert_eq!(e.names(), vec!["items", "words", "x"]);
    let e = Expr::parse("a if b else c").unwrap();
    assert_eq!(e.names(), vec!["a", "b", "c"]);
    let e = Expr::parse("step1.result.size > 10 or not done").unwrap();
    assert_eq!(e.names(), vec!["step1", "done"]);
    let e = Expr::parse("{'k': v}[key][lo:hi:st] + -n").unwrap();
    assert_eq!(e.names(), vec!["v", "key", "lo", "hi", "st", "n"]);
    let e = Expr::parse("True and 1 + 2 == 'x'.upper().count('X')").unwrap();
    assert!(e.names().is_empty());
    let e = Expr::parse("max(a, b, a) < min(b)").unwrap();
    assert_eq!(e.names(), vec!["a", "b"]);
}

#[test]
fn truthiness() {
    for v in [
        json!(null),
        json!(false),
        json!(0),
        json!(0.0),
        json!(-0.0),
        json!(""),
        json!([]),
        json!({}),
    ] {
        assert!(!truthy(&v), "{v} should be falsy");
    }
    for v in [
        json!(true),
        json!(1),
        json!(-1),
        json!(0.5),
        json!(u64::MAX),
        json!(" "),
        json!("0"),
        json!([0]),
        json!({"a": null}),
    ] {
        assert!(truthy(&v), "{v} should be truthy");
    }
    check("not []", json!(true));
    check("not {'a': 1}", json!(false));
}

#[test]
fn limit_source_length() {
    let src = format!("1{}", " ".repeat(MAX_SOURCE_LEN));
    assert!(matches!(
        parse_err(&src),
        ExprError::TooLong { len, limit: MAX_SOURCE_LEN } if len == MAX_SOURCE_LEN + 1
    ));
    let ok = format!("1{}", " ".repeat(MAX_SOURCE_LEN - 1));
    assert!(Expr::parse(&ok).is_ok());
    let huge = "(".repeat(1_000_000);
    assert!(matches!(parse_err(&huge), ExprError::TooLong { .. }));
}

#[test]
fn limit_node_count() {
    let src = format!("1{}", " + 1".repeat(300));
    assert!(src.len() <= MAX_SOURCE_LEN);
    assert!(matches!(
        parse_err(&src),
        ExprError::TooManyNodes {
            limit: MAX_NODES,
            ..
        }
    ));
    // 250 terms = 499 nodes: fine, and evaluation of the left-deep tree works.
    let src = format!("1{}", " + 1".repeat(249));
    assert_eq!(ev(&src), json!(250));
    let list = format!("[{}]", "0, ".repeat(600));
    assert!(matches!(parse_err(&list), ExprError::TooManyNodes { .. }));
}

#[test]
fn limit_nesting_depth() {
    let nested = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let deep = |src: &str| {
        assert!(
            matches!(
                parse_err(src),
                ExprError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{src}"
        );
    };
    deep(&nested("(", "1", ")", 60));
    deep(&nested("[", "1", "]", 60));
    deep(&nested("len(", "x", ")", 60));
    deep(&nested("not ", "x", "", 60));
    deep(&nested("-", "1", "", 60));
    deep(&format!("2{}", " ** 2".repeat(60)));
    deep(&nested("x[", "0", "]", 60));
    deep(&nested("1 if x else ", "2", "", 60));
    // Far beyond the limit, still an error rather than a stack overflow.
    deep(&nested("(", "1", ")", 2000));
    deep(&"[".repeat(4000));
    // Moderate nesting is fine.
    assert_eq!(ev(&nested("(", "1", ")", 30)), json!(1));
    assert_eq!(ev(&nested("[", "1", "]", 30)).to_string().len(), 61);
}

#[test]
fn limit_power() {
    assert!(matches!(err("2 ** 1025"), ExprError::PowerLimit { .. }));
    assert!(matches!(err("2 ** -1025"), ExprError::PowerLimit { .. }));
    assert!(matches!(err("1.0 ** 5000.0"), ExprError::PowerLimit { .. }));
    assert!(matches!(err("1000001 ** 2"), ExprError::PowerLimit { .. }));
    assert!(matches!(err("(-1e7) ** 2"), ExprError::PowerLimit { .. }));
    assert!(matches!(err("1000000 ** 1024"), ExprError::Overflow { .. }));
    assert!(matches!(err("1e6 ** 1024"), ExprError::Overflow { .. }));
    check("1 ** 1024", json!(1));
    check("(-1) ** 1023", json!(-1));
    check("1000000 ** 3", json!(1_000_000_000_000_000_000_i64));
}

#[test]
fn limit_result_size() {
    assert!(matches!(
        err("'a' * 1000001"),
        ExprError::TooLarge {
            size: 1_000_001,
            ..
        }
    ));
    assert!(matches!(err("[1] * 1000001"), ExprError::TooLarge { .. }));
    assert!(matches!(
        err("[1, 2] * 9223372036854775807"),
        ExprError::TooLarge { .. }
    ));
    assert!(matches!(
        err("'ab' * 500000 + 'c'"),
        ExprError::TooLarge { .. }
    ));
    assert!(matches!(
        err("[0] * 600000 + [0] * 600000"),
        ExprError::TooLarge { .. }
    ));
    assert!(matches!(
        err("('a' * 1000).replace('a', 'b' * 2000)"),
        ExprError::TooLarge { .. }
    ));
    assert!(matches!(
        err("('a' * 1000000).split('')"),
        ExprError::InvalidValue { .. }
    ));
    check("len('a' * 1000000)", json!(1_000_000));
    check("len([0] * 1000000)", json!(1_000_000));
    check("len(('ab' * 1000).replace('', '.'))", json!(4001));
}

#[test]
fn limit_work_budget() {
    assert!(matches!(
        err("sorted([3, 1, 2] * 300000)"),
        ExprError::BudgetExhausted { limit: MAX_STEPS }
    ));
    assert!(matches!(
        err("[0] * 900000 == [0] * 900000"),
        ExprError::BudgetExhausted { .. }
    ));
    assert!(matches!(
        err("len(str([[0] * 1000] * 1000) + str([[0] * 1000] * 1000))"),
        ExprError::BudgetExhausted { .. }
    ));
    check("len(sorted([3, 1, 2] * 1000))", json!(3000));
}

#[test]
fn deep_values_are_rejected_not_overflowed() {
    // Deeper than MAX_VALUE_DEPTH; (serde_json itself parses at most 128 levels).
    let mut v = json!(1);
    for _ in 0..MAX_VALUE_DEPTH + 50 {
        v = Value::Array(vec![v]);
    }
    let mut s = Map::new();
    s.insert("deep".into(), v.clone());
    s.insert("deep2".into(), v);
    assert!(matches!(
        ev_in("deep == deep2", &s),
        Err(ExprError::ValueTooDeep { .. })
    ));
    assert!(matches!(
        ev_in("str(deep)", &s),
        Err(ExprError::ValueTooDeep { .. })
    ));
    assert!(matches!(
        ev_in("deep < deep2", &s),
        Err(ExprError::ValueTooDeep { .. })
    ));
    assert_eq!(ev_in("len(deep)", &s), Ok(json!(1)));
}

#[test]
fn deep_left_chains_do_not_overflow_the_stack() {
    // 500 nodes, all in one left-deep chain; evaluation recurses fully before failing.
    let src = format!("a{}", ".b".repeat(MAX_NODES - 1));
    let e = Expr::parse(&src).unwrap();
    let mut s = Map::new();
    s.insert("a".into(), json!({}));
    assert_eq!(e.eval(&s), Err(ExprError::MissingKey { key: "b".into() }));
    let src = format!("x{}", "[0]".repeat(MAX_NODES / 2 - 1));
    let e = Expr::parse(&src).unwrap();
    assert!(matches!(
        e.eval(&Map::new()),
        Err(ExprError::UnknownName { .. })
    ));
}

#[test]
fn evaluation_is_repeatable_and_scope_independent() {
    let e = Expr::parse("count > 3 and flag == 'yes'").unwrap();
    assert_eq!(e.eval(&scope()).unwrap(), json!(true));
    let mut s = scope();
    s.insert("count".into(), json!(1));
    assert_eq!(e.eval(&s).unwrap(), json!(false));
    assert_eq!(e.clone().eval(&scope()).unwrap(), json!(true));
    let handle = std::thread::spawn(move || e.eval(&scope()));
    assert_eq!(handle.join().unwrap(), Ok(json!(true)));
}

const TOKENS: &[&str] = &[
    "1",
    "0",
    "-1",
    "2.5",
    "1e308",
    "9223372036854775807",
    "1024",
    "'a'",
    "\"b\"",
    "''",
    "x",
    "items",
    "len",
    "str",
    "int",
    "float",
    "bool",
    "abs",
    "min",
    "max",
    "round",
    "sorted",
    "sum",
    "any",
    "all",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "+",
    "-",
    "*",
    "**",
    "/",
    "//",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not",
    "is",
    "and",
    "or",
    "if",
    "else",
    "None",
    "True",
    "false",
    "upper",
    "split",
    "get",
    "items",
    "replace",
    "count",
    "[]",
    "{}",
    "'%s'",
    "_",
    "=",
    "lambda",
    "for",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn parse_and_eval_never_panic(src in prop_oneof![
        "(?s).{0,300}",
        "[a-z0-9_ .,:'\"()\\[\\]{}+*/%<>=!-]{0,300}",
        proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)
            .prop_map(|toks| toks.join(" ").chars().take(300).collect::<String>()),
    ]) {
        if let Ok(expr) = Expr::parse(&src) {
            let _ = expr.names();
            let _ = expr.eval(&Map::new());
        } else if let Err(e) = Expr::parse(&src) {
            // Every error renders a message.
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
