//! The ECS cluster query language: the expressions of `memberOf` placement constraints.
//!
//! `subject operator [argument]`, combined with `and`/`&&`, `or`/`||`, `not`/`!` and
//! parentheses, e.g. `attribute:ecs.instance-type =~ t2.*` or
//! `(attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == t2.medium) and
//! registeredAt > 2018-01-01`.
//!
//! Parsing happens once, when a service or task is validated, so that a bad expression is
//! refused with the column and what was expected rather than silently matching nothing at
//! placement time. Arguments are typed per subject at parse time too (`runningTasksCount`
//! takes a whole number, `registeredAt` a date), for the same reason.
//!
//! Choices where the ECS documentation is silent, made to be unsurprising:
//! - `=~` matches the whole value, as Java's `String.matches` does (the documented example
//!   `t2.*` then means "starts with t2"). Patterns use Java-like syntax (lookaround and
//!   backreferences work).
//! - Negated operators (`!=`, `!in`, `!~`, `!exists`) are exactly the negation of their
//!   positive twins. So a container instance without the attribute satisfies
//!   `attribute:stack != prod`, and `task:group != service:db` holds on an instance that runs
//!   no `service:db` task, even if it runs others.
//! - `task:group OP x` holds when some task on the instance has a group satisfying `OP x`.
//! - Ordering operators on attributes compare numerically when both sides are numbers,
//!   otherwise as strings; on `registeredAt` as instants (a bare date is midnight UTC); on
//!   `agentVersion` component by component (`1.20.0 > 1.9.1`).
//! - Keywords (`and`, `or`, `not`, `equals`, `in`...) and subject names are case-insensitive;
//!   attribute names and values are not.

use std::cmp::Ordering;
use std::fmt;

use fancy_regex::Regex;

/// What a query asks about a container instance. The placement engine implements it over its
/// own state (including the tasks it has just placed), the controller over a Node.
pub trait InstanceFacts {
    /// ECS `ec2InstanceId`: in kubecs the Node's name.
    fn ec2_instance_id(&self) -> &str;
    /// The value of an ECS attribute (`ecs.availability-zone`, custom ones...).
    fn attribute(&self, name: &str) -> Option<&str>;
    /// Whether the agent is connected (the Node is Ready).
    fn agent_connected(&self) -> bool;
    /// The agent version (in kubecs, the kubelet's), e.g. `v1.31.2`.
    fn agent_version(&self) -> Option<&str>;
    /// When the instance was registered to the cluster, RFC 3339.
    fn registered_at(&self) -> Option<&str>;
    /// How many tasks run on the instance.
    fn running_tasks_count(&self) -> usize;
    /// Whether some task on the instance has a group for which `test` holds.
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool;
}

/// The subject of a condition: what of the instance is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    /// `attribute:NAME`.
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    /// `task:group`: the groups of the tasks running on the instance.
    TaskGroup,
}

/// A comparison operator, in its canonical (symbol) spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

use Operator::*;

const ALL_OPERATORS: &[Operator] = &[
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
];
const IDENTITY_OPERATORS: &[Operator] = &[Equals, NotEquals, In, NotIn, Matches, NotMatches];
const ORDERED_OPERATORS: &[Operator] = &[
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
];
const GROUP_OPERATORS: &[Operator] = &[
    Equals, NotEquals, In, NotIn, Matches, NotMatches, Exists, NotExists,
];

impl Operator {
    /// The symbol ECS documents for the operator.
    pub fn symbol(self) -> &'static str {
        match self {
            Equals => "==",
            NotEquals => "!=",
            GreaterThan => ">",
            GreaterThanEqual => ">=",
            LessThan => "<",
            LessThanEqual => "<=",
            Exists => "exists",
            NotExists => "!exists",
            In => "in",
            NotIn => "!in",
            Matches => "=~",
            NotMatches => "!~",
        }
    }

    /// The positive operator this one negates, if it is a negation.
    fn negation_of(self) -> Option<Operator> {
        match self {
            NotEquals => Some(Equals),
            NotExists => Some(Exists),
            NotIn => Some(In),
            NotMatches => Some(Matches),
            _ => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// How a subject's arguments are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Count,
    Time,
    Version,
}

impl Subject {
    /// The operators ECS documents as valid for the subject.
    pub fn operators(&self) -> &'static [Operator] {
        match self {
            Subject::AgentConnected | Subject::Ec2InstanceId => IDENTITY_OPERATORS,
            Subject::AgentVersion | Subject::RegisteredAt | Subject::RunningTasksCount => {
                ORDERED_OPERATORS
            }
            Subject::Attribute(_) => ALL_OPERATORS,
            Subject::TaskGroup => GROUP_OPERATORS,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Subject::AgentConnected => Kind::Bool,
            Subject::AgentVersion => Kind::Version,
            Subject::RegisteredAt => Kind::Time,
            Subject::RunningTasksCount => Kind::Count,
            Subject::Attribute(_) | Subject::Ec2InstanceId | Subject::TaskGroup => Kind::Text,
        }
    }

    /// Whether the subject changes as tasks are placed (the engine re-evaluates those).
    fn depends_on_tasks(&self) -> bool {
        matches!(self, Subject::TaskGroup | Subject::RunningTasksCount)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::Attribute(name) => write!(f, "attribute:{name}"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

/// A typed argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Bool(bool),
    Count(u64),
    /// Nanoseconds since the Unix epoch.
    Time(i128),
    /// Numeric components, `1.20.0` -> `[1, 20, 0]`.
    Version(Vec<u64>),
}

/// An argument as written (for display) and as typed (for evaluation).
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub raw: String,
    pub value: Value,
}

/// A compiled `=~` / `!~` pattern, anchored to match whole values.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    /// Boxed: a compiled regex is large, and every expression node would carry its size.
    regex: Box<Regex>,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Pattern {
    fn new(source: &str) -> Result<Self, String> {
        let regex = Regex::new(&format!(r"\A(?:{source})\z")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_string(),
            regex: Box::new(regex),
        })
    }

    /// Whole-value match. A pattern that exceeds the backtracking limit matches nothing:
    /// placement must not hang on a pathological expression.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value).unwrap_or(false)
    }
}

/// What a condition compares against.
#[derive(Clone, Debug, PartialEq)]
pub enum Argument {
    /// `exists` / `!exists`.
    None,
    One(Literal),
    /// `in` / `!in`.
    List(Vec<Literal>),
    /// `=~` / `!~`.
    Pattern(Pattern),
}

/// `subject operator [argument]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub subject: Subject,
    pub operator: Operator,
    pub argument: Argument,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    Condition(Condition),
    Not(Box<Expression>),
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
}

/// A parse error: where (1-based column, in characters) and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at column {column}, found {found}")]
pub struct QueryError {
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What the parser expected at that column.
    pub expected: String,
    /// What it found there: a quoted excerpt or `end of expression`.
    pub found: String,
}

/// A parsed cluster query: the expression and the text it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    source: String,
    expression: Expression,
}

impl Query {
    /// Parses an expression of the cluster query language.
    pub fn parse(source: &str) -> Result<Self, QueryError> {
        let mut p = Parser {
            src: source,
            pos: 0,
        };
        let expression = p.parse_or()?;
        p.skip_ws();
        if !p.at_end() {
            let at = p.pos;
            let expected = if p.peek() == Some(')') {
                "no unmatched ')'"
            } else {
                "'and', 'or' or the end of the expression"
            };
            return Err(p.error(at, expected));
        }
        Ok(Self {
            source: source.to_string(),
            expression,
        })
    }

    /// The text the query was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    /// Whether the instance satisfies the query.
    pub fn matches<F: InstanceFacts + ?Sized>(&self, facts: &F) -> bool {
        self.expression.matches(facts)
    }

    /// Whether the answer can change as tasks are placed (`task:group`, `runningTasksCount`):
    /// the engine evaluates other queries once per instance and these after every placement.
    pub fn depends_on_tasks(&self) -> bool {
        self.expression.depends_on_tasks()
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Query {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Query::parse(s)
    }
}

impl Expression {
    pub fn matches<F: InstanceFacts + ?Sized>(&self, facts: &F) -> bool {
        match self {
            Expression::Condition(c) => c.matches(facts),
            Expression::Not(e) => !e.matches(facts),
            Expression::And(a, b) => a.matches(facts) && b.matches(facts),
            Expression::Or(a, b) => a.matches(facts) || b.matches(facts),
        }
    }

    pub fn depends_on_tasks(&self) -> bool {
        match self {
            Expression::Condition(c) => c.subject.depends_on_tasks(),
            Expression::Not(e) => e.depends_on_tasks(),
            Expression::And(a, b) | Expression::Or(a, b) => {
                a.depends_on_tasks() || b.depends_on_tasks()
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expression::Or(..) => 0,
            Expression::And(..) => 1,
            Expression::Not(_) | Expression::Condition(_) => 2,
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.precedence() < min {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// Canonical spelling: symbols for operators, `and`/`or`/`not(...)`, quotes where needed.
/// Parsing the display gives back an equal expression.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expression::Condition(c) => write!(f, "{c}"),
            Expression::Not(e) => write!(f, "not({e})"),
            Expression::And(a, b) => {
                a.fmt_operand(f, 1)?;
                f.write_str(" and ")?;
                b.fmt_operand(f, 2)
            }
            Expression::Or(a, b) => {
                a.fmt_operand(f, 0)?;
                f.write_str(" or ")?;
                b.fmt_operand(f, 1)
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subject, self.operator)?;
        match &self.argument {
            Argument::None => Ok(()),
            Argument::One(l) => write!(f, " {}", quoted_if_needed(&l.raw)),
            Argument::List(ls) => {
                f.write_str(" [")?;
                for (i, l) in ls.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&quoted_if_needed(&l.raw))?;
                }
                f.write_str("]")
            }
            Argument::Pattern(p) => write!(f, " {}", quoted_if_needed(&p.source)),
        }
    }
}

fn quoted_if_needed(raw: &str) -> String {
    let bare = !raw.is_empty()
        && !raw.contains("&&")
        && !raw.contains("||")
        && !raw
            .chars()
            .any(|c| c.is_whitespace() || BARE_STOP.contains(&c));
    if bare {
        raw.to_string()
    } else {
        let mut s = String::with_capacity(raw.len() + 2);
        s.push('\'');
        for c in raw.chars() {
            if c == '\'' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('\'');
        s
    }
}

impl Condition {
    pub fn matches<F: InstanceFacts + ?Sized>(&self, facts: &F) -> bool {
        let (positive, negate) = match self.operator.negation_of() {
            Some(p) => (p, true),
            None => (self.operator, false),
        };
        let held = match &self.subject {
            Subject::TaskGroup => {
                facts.any_task_group(&mut |g| self.test(positive, Actual::Text(g)))
            }
            subject => actual(subject, facts).is_some_and(|v| self.test(positive, v)),
        };
        held != negate
    }

    /// Tests one actual value with a positive operator.
    fn test(&self, op: Operator, actual: Actual<'_>) -> bool {
        match (&self.argument, op) {
            (_, Exists) => true,
            (Argument::One(l), _) => {
                let ord = compare(&actual, &l.value);
                match op {
                    Equals => ord == Some(Ordering::Equal),
                    GreaterThan => ord == Some(Ordering::Greater),
                    GreaterThanEqual => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                    LessThan => ord == Some(Ordering::Less),
                    LessThanEqual => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    _ => false,
                }
            }
            (Argument::List(ls), In) => ls
                .iter()
                .any(|l| compare(&actual, &l.value) == Some(Ordering::Equal)),
            (Argument::Pattern(p), Matches) => match actual {
                Actual::Text(s) => p.is_match(s),
                Actual::Bool(b) => p.is_match(if b { "true" } else { "false" }),
                Actual::Count(n) => p.is_match(&n.to_string()),
                Actual::Time(_) | Actual::Version(_) => false,
            },
            _ => false,
        }
    }
}

/// A value read from an instance.
enum Actual<'a> {
    Text(&'a str),
    Bool(bool),
    Count(u64),
    Time(i128),
    Version(Vec<u64>),
}

fn actual<'a, F: InstanceFacts + ?Sized>(subject: &Subject, facts: &'a F) -> Option<Actual<'a>> {
    Some(match subject {
        Subject::AgentConnected => Actual::Bool(facts.agent_connected()),
        Subject::AgentVersion => Actual::Version(parse_version(facts.agent_version()?)?),
        Subject::Attribute(name) => Actual::Text(facts.attribute(name)?),
        Subject::Ec2InstanceId => Actual::Text(facts.ec2_instance_id()),
        Subject::RegisteredAt => Actual::Time(parse_timestamp(facts.registered_at()?)?),
        Subject::RunningTasksCount => Actual::Count(facts.running_tasks_count() as u64),
        Subject::TaskGroup => return None,
    })
}

/// Orders an actual value against an argument. Text compares numerically when both sides
/// are numbers (`attribute:gpus > 9` with `10`), else as strings; equality stays textual so
/// that `1.0` is not the value `1`.
fn compare(actual: &Actual<'_>, expected: &Value) -> Option<Ordering> {
    match (actual, expected) {
        (Actual::Text(a), Value::Text(b)) => {
            if *a == b {
                return Some(Ordering::Equal);
            }
            let textual = (*a).cmp(b.as_str());
            match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                (Ok(x), Ok(y)) => match x.partial_cmp(&y) {
                    Some(Ordering::Equal) | None => Some(textual),
                    numeric => numeric,
                },
                _ => Some(textual),
            }
        }
        (Actual::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Actual::Count(a), Value::Count(b)) => Some(a.cmp(b)),
        (Actual::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        (Actual::Version(a), Value::Version(b)) => Some(compare_versions(a, b)),
        _ => None,
    }
}

fn compare_versions(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// `1.20.0`, `v1.31.2`, `1.20.0-rc1` (the pre-release part is ignored).
pub fn parse_version(s: &str) -> Option<Vec<u64>> {
    let s = s.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let core = s.split(['-', '+']).next().unwrap_or("");
    if core.is_empty() {
        return None;
    }
    core.split('.').map(|c| c.parse::<u64>().ok()).collect()
}

/// The formats ECS documents for `registeredAt`: `2018-06-18T22:28:28+00:00`,
/// `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28` (UTC) and `2018-06-18` (midnight UTC);
/// fractional seconds are accepted. Returns nanoseconds since the Unix epoch.
pub fn parse_timestamp(s: &str) -> Option<i128> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    let mut nanos: i128 = 0;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        secs += h * 3600 + m * 60 + sec;
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let digits = &s.trim()[start..i.min(start + 9)];
            nanos = digits.parse::<i128>().ok()? * 10i128.pow(9 - digits.len() as u32);
        }
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                secs -= if *sign == b'+' { offset } else { -offset };
            }
            _ => return None,
        }
    }
    Some(secs as i128 * 1_000_000_000 + nanos)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Characters that end a bare (unquoted) word.
const BARE_STOP: &[char] = &['(', ')', '[', ']', ',', '\'', '"'];
/// Characters that end a subject (where an operator may follow with no space).
const SUBJECT_STOP: &[char] = &[
    '(', ')', '[', ']', ',', '\'', '"', '=', '!', '<', '>', '~', '&', '|',
];
const SUBJECTS_EXPECTED: &str = "a subject (agentConnected, agentVersion, attribute:NAME, \
     ec2InstanceId, registeredAt, runningTasksCount, task:group), '(' or 'not'";
const OPERATORS_EXPECTED: &str =
    "an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~)";

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '*')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn error(&self, at: usize, expected: impl Into<String>) -> QueryError {
        let rest = &self.src[at..];
        let found = if rest.is_empty() {
            "end of expression".to_string()
        } else {
            let token: String = match rest.chars().next() {
                Some(c) if !is_word_char(c) && !c.is_whitespace() => {
                    // A symbol: show it with what follows it up to the next space.
                    rest.chars()
                        .take_while(|c| !c.is_whitespace())
                        .take(20)
                        .collect()
                }
                _ => rest
                    .chars()
                    .take_while(|c| is_word_char(*c))
                    .take(40)
                    .collect(),
            };
            format!("'{token}'")
        };
        QueryError {
            column: self.src[..at].chars().count() + 1,
            expected: expected.into(),
            found,
        }
    }

    /// Consumes `word` (case-insensitive) when it stands alone at the cursor.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let matched = rest
            .get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
            && !rest[word.len()..].chars().next().is_some_and(is_word_char);
        if matched {
            self.pos += word.len();
        }
        matched
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len();
            true
        } else {
            false
        }
    }

    fn parse_or(&mut self) -> Result<Expression, QueryError> {
        let mut left = self.parse_and()?;
        loop {
            self.skip_ws();
            if self.eat("||") || self.eat_keyword("or") {
                let right = self.parse_and()?;
                left = Expression::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn parse_and(&mut self) -> Result<Expression, QueryError> {
        let mut left = self.parse_unary()?;
        loop {
            self.skip_ws();
            if self.eat("&&") || self.eat_keyword("and") {
                let right = self.parse_unary()?;
                left = Expression::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn parse_unary(&mut self) -> Result<Expression, QueryError> {
        self.skip_ws();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            return Ok(Expression::Not(Box::new(self.parse_unary()?)));
        }
        if self.eat_keyword("not") {
            return Ok(Expression::Not(Box::new(self.parse_unary()?)));
        }
        if self.eat("(") {
            let inner = self.parse_or()?;
            self.skip_ws();
            if !self.eat(")") {
                let at = self.pos;
                return Err(self.error(at, "'and', 'or' or ')'"));
            }
            return Ok(inner);
        }
        self.parse_condition().map(Expression::Condition)
    }

    fn parse_subject(&mut self) -> Result<Subject, QueryError> {
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || SUBJECT_STOP.contains(&c))
            .unwrap_or(self.rest().len());
        let word = &self.src[start..start + len];
        let subject = match word.to_ascii_lowercase().as_str() {
            "agentconnected" => Subject::AgentConnected,
            "agentversion" => Subject::AgentVersion,
            "ec2instanceid" => Subject::Ec2InstanceId,
            "registeredat" => Subject::RegisteredAt,
            "runningtaskscount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            lower if lower.starts_with("attribute:") => {
                let name = &word["attribute:".len()..];
                if name.is_empty() {
                    return Err(
                        self.error(start + word.len(), "an attribute name after 'attribute:'")
                    );
                }
                Subject::Attribute(name.to_string())
            }
            _ => return Err(self.error(start, SUBJECTS_EXPECTED)),
        };
        self.pos += len;
        Ok(subject)
    }

    fn parse_operator(&mut self) -> Result<Operator, QueryError> {
        const SYMBOLS: &[(&str, Operator)] = &[
            ("==", Equals),
            ("=~", Matches),
            ("!=", NotEquals),
            ("!~", NotMatches),
            (">=", GreaterThanEqual),
            (">", GreaterThan),
            ("<=", LessThanEqual),
            ("<", LessThan),
        ];
        const WORDS: &[(&str, Operator)] = &[
            ("!exists", NotExists),
            ("!in", NotIn),
            ("equals", Equals),
            ("not_equals", NotEquals),
            ("greater_than_equal", GreaterThanEqual),
            ("greater_than", GreaterThan),
            ("less_than_equal", LessThanEqual),
            ("less_than", LessThan),
            ("exists", Exists),
            ("not_exists", NotExists),
            ("in", In),
            ("not_in", NotIn),
            ("matches", Matches),
            ("not_matches", NotMatches),
        ];
        for (word, op) in WORDS {
            if self.eat_keyword(word) {
                return Ok(*op);
            }
        }
        for (symbol, op) in SYMBOLS {
            if self.eat(symbol) {
                return Ok(*op);
            }
        }
        Err(self.error(self.pos, OPERATORS_EXPECTED))
    }

    fn parse_condition(&mut self) -> Result<Condition, QueryError> {
        let subject = self.parse_subject()?;
        self.skip_ws();
        let op_at = self.pos;
        let operator = self.parse_operator()?;
        if !subject.operators().contains(&operator) {
            let valid: Vec<&str> = subject.operators().iter().map(|o| o.symbol()).collect();
            return Err(self.error(
                op_at,
                format!("an operator valid for {subject} ({})", valid.join(", ")),
            ));
        }
        let argument = match operator {
            Exists | NotExists => Argument::None,
            In | NotIn => {
                self.skip_ws();
                if !self.eat("[") {
                    return Err(self.error(self.pos, "'[' to open the list"));
                }
                let mut items = Vec::new();
                loop {
                    items.push(self.parse_literal(&subject)?);
                    self.skip_ws();
                    if self.eat("]") {
                        break;
                    }
                    if !self.eat(",") {
                        return Err(self.error(self.pos, "',' or ']'"));
                    }
                }
                Argument::List(items)
            }
            Matches | NotMatches => {
                self.skip_ws();
                let at = self.pos;
                let source = self.parse_word(true)?;
                let pattern = Pattern::new(&source)
                    .map_err(|e| self.error(at, format!("a valid regular expression ({e})")))?;
                Argument::Pattern(pattern)
            }
            _ => Argument::One(self.parse_literal(&subject)?),
        };
        Ok(Condition {
            subject,
            operator,
            argument,
        })
    }

    fn parse_literal(&mut self, subject: &Subject) -> Result<Literal, QueryError> {
        self.skip_ws();
        let at = self.pos;
        let raw = self.parse_word(false)?;
        let value = match subject.kind() {
            Kind::Text => Value::Text(raw.clone()),
            Kind::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(self.error(at, "true or false")),
            },
            Kind::Count => Value::Count(raw.parse().map_err(|_| self.error(at, "a whole number"))?),
            Kind::Time => Value::Time(parse_timestamp(&raw).ok_or_else(|| {
                self.error(
                    at,
                    "a date such as 2018-06-18 or a timestamp such as 2018-06-18T22:28:28Z",
                )
            })?),
            Kind::Version => Value::Version(
                parse_version(&raw).ok_or_else(|| self.error(at, "a version such as 1.20.0"))?,
            ),
        };
        Ok(Literal { raw, value })
    }

    /// A quoted string, or a bare word up to whitespace or punctuation. For patterns a bare
    /// word may hold balanced parentheses and brackets: `=~ (t2|m5)\..*`.
    fn parse_word(&mut self, pattern: bool) -> Result<String, QueryError> {
        let start = self.pos;
        if let Some(q @ ('\'' | '"')) = self.peek() {
            self.pos += 1;
            let mut out = String::new();
            let mut chars = self.rest().char_indices();
            while let Some((i, c)) = chars.next() {
                if c == q {
                    self.pos += i + 1;
                    return Ok(out);
                }
                // `\'` and `\\` escape; other backslashes stay, for patterns like `\d`.
                let escaped = chars.clone().next().map(|(_, n)| n);
                if c == '\\' && (escaped == Some(q) || escaped == Some('\\')) {
                    chars.next();
                    out.push(escaped.unwrap_or(c));
                    continue;
                }
                out.push(c);
            }
            return Err(self.error(self.src.len(), format!("a closing {q}")));
        }
        let mut depth = 0usize;
        let mut end = self.src.len();
        for (i, c) in self.rest().char_indices() {
            let here = &self.rest()[i..];
            if c.is_whitespace() || here.starts_with("&&") || here.starts_with("||") {
                end = self.pos + i;
                break;
            }
            match c {
                '(' | '[' if pattern => depth += 1,
                ')' | ']' if pattern && depth > 0 => depth -= 1,
                // Commas end list items, but a pattern is never in a list: `t2{1,3}`.
                c if BARE_STOP.contains(&c) && !(pattern && c == ',') => {
                    end = self.pos + i;
                    break;
                }
                _ => {}
            }
        }
        if end == start {
            return Err(self.error(start, if pattern { "a pattern" } else { "a value" }));
        }
        self.pos = end;
        Ok(self.src[start..end].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A container instance as plain data, for the tests.
    #[derive(Default)]
    struct Facts {
        id: String,
        attributes: BTreeMap<String, String>,
        connected: bool,
        version: Option<String>,
        registered_at: Option<String>,
        groups: Vec<String>,
    }

    impl InstanceFacts for Facts {
        fn ec2_instance_id(&self) -> &str {
            &self.id
        }
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes.get(name).map(String::as_str)
        }
        fn agent_connected(&self) -> bool {
            self.connected
        }
        fn agent_version(&self) -> Option<&str> {
            self.version.as_deref()
        }
        fn registered_at(&self) -> Option<&str> {
            self.registered_at.as_deref()
        }
        fn running_tasks_count(&self) -> usize {
            self.groups.len()
        }
        fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
            self.groups.iter().any(|g| test(g))
        }
    }

    fn instance(id: &str, kind: &str, zone: &str) -> Facts {
        Facts {
            id: id.into(),
            attributes: [
                ("ecs.instance-type".to_string(), kind.to_string()),
                ("ecs.availability-zone".to_string(), zone.to_string()),
                ("ecs.os-type".to_string(), "linux".to_string()),
            ]
            .into(),
            connected: true,
            version: Some("v1.31.2".into()),
            registered_at: Some("2018-06-18T22:28:28Z".into()),
            groups: vec![],
        }
    }

    fn q(s: &str) -> Query {
        Query::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> QueryError {
        Query::parse(s).expect_err(s)
    }

    #[test]
    fn documented_examples_parse_and_select_what_ecs_says() {
        let t2_micro = instance("i-abcd1234", "t2.micro", "us-east-1a");
        let t2_small = instance("i-wxyx7890", "t2.small", "us-east-1b");
        let m5 = instance("i-m5", "m5.large", "us-east-1c");
        let g2 = instance("i-g2", "g2.2xlarge", "us-east-1a");

        let e = q("attribute:ecs.instance-type =~ t2.*");
        assert!(e.matches(&t2_micro) && e.matches(&t2_small) && !e.matches(&m5));

        let e = q("attribute:ecs.instance-type =~ g2.*");
        assert!(e.matches(&g2) && !e.matches(&t2_micro));

        let e = q("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]");
        assert!(e.matches(&t2_micro) && e.matches(&t2_small) && !e.matches(&m5));

        let e = q("not(attribute:ecs.instance-type == t2.micro)");
        assert!(!e.matches(&t2_micro) && e.matches(&t2_small));

        let e = q("attribute:ecs.instance-type == t2.small");
        assert!(e.matches(&t2_small) && !e.matches(&t2_micro));

        let e = q("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']");
        assert!(e.matches(&t2_micro) && e.matches(&t2_small) && !e.matches(&m5));

        let e = q(
            "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone == us-east-1a",
        );
        assert!(e.matches(&t2_micro) && !e.matches(&t2_small) && !e.matches(&g2));

        let e = q("attribute:ecs.os-type exists");
        assert!(e.matches(&m5));
        let e = q("attribute:stack !exists");
        assert!(e.matches(&m5));
    }

    #[test]
    fn compound_with_dates_as_documented() {
        let e = q(
            "(attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == t2.medium) and registeredAt > 2018-01-01",
        );
        let mut small = instance("a", "t2.small", "z");
        assert!(e.matches(&small));
        small.registered_at = Some("2017-12-31T23:59:59Z".into());
        assert!(!e.matches(&small), "registered before 2018");
        let mut medium = instance("b", "t2.medium", "z");
        medium.registered_at = Some("2018-01-01T00:00:01+00:00".into());
        assert!(e.matches(&medium));
        assert!(!e.matches(&instance("c", "t2.micro", "z")));
        // Precedence: `and` binds tighter than `or`.
        let e = q(
            "attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == t2.medium and registeredAt > 2030-01-01",
        );
        assert!(e.matches(&instance("d", "t2.small", "z")));
    }

    #[test]
    fn task_group_holds_when_a_task_of_the_group_runs_there() {
        let e = q("task:group == service:production");
        let mut i = instance("i-1", "m5.large", "z");
        assert!(!e.matches(&i));
        i.groups = vec!["service:staging".into(), "service:production".into()];
        assert!(e.matches(&i));
        let not_db = q("not(task:group == database)");
        assert!(not_db.matches(&i));
        i.groups.push("database".into());
        assert!(!not_db.matches(&i));
        // != is the negation of ==, not "some other group runs here".
        assert!(!q("task:group != database").matches(&i));
        assert!(q("task:group =~ service:.*").matches(&i));
        assert!(q("task:group in [a, database]").matches(&i));
        assert!(q("task:group exists").matches(&i));
        assert!(q("task:group !exists").matches(&instance("i-2", "m5.large", "z")));
        assert!(q("task:group == database").depends_on_tasks());
        assert!(q("runningTasksCount == 0").depends_on_tasks());
        assert!(!q("attribute:a == b").depends_on_tasks());
    }

    #[test]
    fn running_tasks_count_agent_and_version_subjects() {
        let mut i = instance("i-1", "m5.large", "z");
        assert!(q("runningTasksCount == 0").matches(&i));
        i.groups = vec!["a".into(), "b".into()];
        assert!(!q("runningTasksCount == 0").matches(&i));
        assert!(q("runningTasksCount > 1").matches(&i));
        assert!(q("runningTasksCount <= 2").matches(&i));
        assert!(!q("runningTasksCount < 2").matches(&i));
        assert!(q("runningTasksCount greater_than_equal 2").matches(&i));
        assert!(q("agentConnected == true").matches(&i));
        assert!(q("agentConnected in [true]").matches(&i));
        assert!(q("agentConnected =~ t.*").matches(&i));
        i.connected = false;
        assert!(q("agentConnected equals false").matches(&i));
        assert!(q("agentConnected != true").matches(&i));
        // kubelet v1.31.2 against versions component by component, not as text.
        assert!(q("agentVersion > 1.9.0").matches(&i));
        assert!(q("agentVersion >= 1.31.2").matches(&i));
        assert!(q("agentVersion == 1.31.2").matches(&i));
        assert!(q("agentVersion < 1.100").matches(&i));
        i.version = None;
        assert!(!q("agentVersion > 0").matches(&i));
        assert!(q("agentVersion != 1.0").matches(&i));
    }

    #[test]
    fn registered_at_takes_every_documented_format() {
        let i = instance("i-1", "m5.large", "z"); // 2018-06-18T22:28:28Z
        for arg in [
            "2018-06-18T22:28:28+00:00",
            "2018-06-18T22:28:28Z",
            "2018-06-18T22:28:28",
        ] {
            assert!(q(&format!("registeredAt == {arg}")).matches(&i), "{arg}");
        }
        assert!(q("registeredAt == 2018-06-18T23:28:28+01:00").matches(&i));
        assert!(q("registeredAt > 2018-06-18").matches(&i));
        assert!(q("registeredAt < 2018-06-19").matches(&i));
        assert!(q("registeredAt <= 2018-06-18T22:28:28.000Z").matches(&i));
        assert!(!q("registeredAt > 2018-06-18T22:28:28.5Z").matches(&i));
        let mut unknown = instance("i-2", "m5.large", "z");
        unknown.registered_at = None;
        assert!(!q("registeredAt > 2000-01-01").matches(&unknown));
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000_000)
        );
        assert_eq!(parse_timestamp("2018-02-30"), None);
        assert_eq!(parse_timestamp("2018-06-18 22:28:28"), None);
    }

    #[test]
    fn operators_have_word_and_symbol_spellings() {
        let i = instance("i-1", "t2.micro", "us-east-1a");
        let pairs = [
            (
                "attribute:ecs.instance-type == t2.micro",
                "attribute:ecs.instance-type equals t2.micro",
            ),
            (
                "attribute:ecs.instance-type != t2.micro",
                "attribute:ecs.instance-type not_equals t2.micro",
            ),
            (
                "attribute:ecs.instance-type !in [t2.micro]",
                "attribute:ecs.instance-type not_in [t2.micro]",
            ),
            (
                "attribute:ecs.instance-type =~ t2.*",
                "attribute:ecs.instance-type matches t2.*",
            ),
            (
                "attribute:ecs.instance-type !~ t2.*",
                "attribute:ecs.instance-type not_matches t2.*",
            ),
            (
                "attribute:ecs.instance-type !exists",
                "attribute:ecs.instance-type not_exists",
            ),
            (
                "attribute:a == b && attribute:c == d",
                "attribute:a == b and attribute:c == d",
            ),
            (
                "attribute:a == b || attribute:c == d",
                "attribute:a == b OR attribute:c == d",
            ),
            ("!(attribute:a == b)", "NOT (attribute:a == b)"),
        ];
        for (sym, word) in pairs {
            assert_eq!(q(sym).expression(), q(word).expression(), "{sym} vs {word}");
            assert_eq!(q(sym).matches(&i), q(word).matches(&i));
        }
        assert!(
            q("attribute:ecs.instance-type!=t2.small&&attribute:ecs.availability-zone==us-east-1a")
                .matches(&i)
        );
    }

    #[test]
    fn negated_operators_hold_when_the_attribute_is_missing() {
        let i = instance("i-1", "t2.micro", "z");
        assert!(q("attribute:stack != prod").matches(&i));
        assert!(q("attribute:stack !in [prod]").matches(&i));
        assert!(q("attribute:stack !~ prod").matches(&i));
        assert!(!q("attribute:stack == prod").matches(&i));
        assert!(!q("attribute:stack =~ .*").matches(&i));
        assert!(!q("attribute:stack > 1").matches(&i));
    }

    #[test]
    fn attributes_order_numerically_when_numbers() {
        let mut i = instance("i-1", "t2.micro", "z");
        i.attributes.insert("gpus".into(), "10".into());
        assert!(q("attribute:gpus > 9").matches(&i));
        assert!(q("attribute:gpus >= 10").matches(&i));
        assert!(!q("attribute:gpus < 9").matches(&i));
        assert!(q("attribute:ecs.instance-type > t2.a").matches(&i));
        // Equality stays textual.
        assert!(!q("attribute:gpus == 10.0").matches(&i));
    }

    #[test]
    fn patterns_match_whole_values_with_java_syntax() {
        let i = instance("i-1", "xt2.micro", "us-east-1a");
        assert!(!q("attribute:ecs.instance-type =~ t2.*").matches(&i));
        assert!(q("attribute:ecs.instance-type =~ .*t2.*").matches(&i));
        let m5 = instance("i-2", "m5.large", "z");
        assert!(q(r"attribute:ecs.instance-type =~ (t2|m5)\..*").matches(&m5));
        assert!(q(r"(attribute:ecs.instance-type =~ (t2|m5)\..*)").matches(&m5));
        assert!(q(r"attribute:ecs.instance-type =~ '(?!t2)[a-z0-9]+\.large'").matches(&m5));
        assert!(
            q(r"attribute:ecs.instance-type =~ 'm5\.(?:large|xlarge)' and ec2InstanceId == i-2")
                .matches(&m5)
        );
    }

    #[test]
    fn quoted_values_may_hold_anything() {
        let mut i = instance("i-1", "t2.micro", "z");
        i.attributes
            .insert("team".into(), "web (blue), it's".into());
        assert!(q(r"attribute:team == 'web (blue), it\'s'").matches(&i));
        assert!(q(r#"attribute:team == "web (blue), it's""#).matches(&i));
        assert!(q(r#"attribute:team in ["a", 'web (blue), it\'s']"#).matches(&i));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for s in [
            "(attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == t2.medium) and registeredAt > 2018-01-01",
            "not(attribute:ecs.instance-type == t2.micro)",
            "ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']",
            "a:b == c",
        ]
        .into_iter()
        .filter_map(|s| Query::parse(s).ok())
        {
            let shown = s.expression().to_string();
            assert_eq!(q(&shown).expression(), s.expression(), "{shown}");
        }
        assert_eq!(
            q("not (attribute:a equals b) && (attribute:c == d || attribute:e exists)")
                .expression()
                .to_string(),
            "not(attribute:a == b) and (attribute:c == d or attribute:e exists)"
        );
        assert_eq!(
            q("attribute:t == 'x y'").expression().to_string(),
            "attribute:t == 'x y'"
        );
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        let e = err("");
        assert_eq!((e.column, e.found.as_str()), (1, "end of expression"));
        assert!(e.expected.starts_with("a subject"), "{e}");

        let e = err("attribute:ecs.instance-type t2.micro");
        assert_eq!(e.column, 29);
        assert!(e.expected.starts_with("an operator"), "{e}");
        assert_eq!(e.found, "'t2.micro'");
        assert_eq!(
            e.to_string(),
            "expected an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~) at column 29, found 't2.micro'"
        );

        let e = err("instanceType == t2.micro");
        assert_eq!((e.column, e.found.as_str()), (1, "'instanceType'"));
        assert!(e.expected.contains("attribute:NAME"), "{e}");

        let e = err("attribute: == x");
        assert_eq!(e.expected, "an attribute name after 'attribute:'");
        assert_eq!(e.column, 11);

        let e = err("attribute:ecs.instance-type ==");
        assert_eq!((e.column, e.expected.as_str()), (31, "a value"));

        let e = err("attribute:ecs.availability-zone in us-east-1a");
        assert_eq!(
            (e.column, e.expected.as_str()),
            (36, "'[' to open the list")
        );

        let e = err("attribute:ecs.availability-zone in [us-east-1a us-east-1b]");
        assert_eq!((e.column, e.expected.as_str()), (48, "',' or ']'"));

        let e = err("attribute:ecs.availability-zone in [us-east-1a,]");
        assert_eq!((e.column, e.expected.as_str()), (48, "a value"));

        let e = err("(attribute:a == b");
        assert_eq!((e.column, e.expected.as_str()), (18, "'and', 'or' or ')'"));

        let e = err("attribute:a == b)");
        assert_eq!((e.column, e.expected.as_str()), (17, "no unmatched ')'"));

        let e = err("attribute:a == b c");
        assert_eq!(
            (e.column, e.expected.as_str()),
            (18, "'and', 'or' or the end of the expression")
        );

        let e = err("attribute:a == b and");
        assert_eq!(e.column, 21);
        assert!(e.expected.starts_with("a subject"));

        let e = err("runningTasksCount == many");
        assert_eq!((e.column, e.expected.as_str()), (22, "a whole number"));

        let e = err("registeredAt > yesterday");
        assert_eq!(e.column, 16);
        assert!(e.expected.starts_with("a date such as 2018-06-18"), "{e}");

        let e = err("agentConnected == yes");
        assert_eq!(e.expected, "true or false");

        let e = err("agentVersion > latest");
        assert_eq!(e.expected, "a version such as 1.20.0");

        let e = err("ec2InstanceId > i-1");
        assert_eq!(e.column, 15);
        assert_eq!(
            e.expected,
            "an operator valid for ec2InstanceId (==, !=, in, !in, =~, !~)"
        );

        let e = err("runningTasksCount exists");
        assert!(
            e.expected
                .starts_with("an operator valid for runningTasksCount")
        );

        let e = err("attribute:a =~ 't2(.*'");
        assert_eq!(e.column, 16);
        assert!(e.expected.starts_with("a valid regular expression"), "{e}");

        let e = err("attribute:a == 'open");
        assert_eq!((e.column, e.expected.as_str()), (21, "a closing '"));

        let e = err("attribute:a == b and not");
        assert_eq!(e.column, 25);

        // Columns count characters, not bytes.
        let e = err("attribute:zoné == é x");
        assert_eq!(e.column, 21);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn arb_subject() -> impl Strategy<Value = Subject> {
            prop_oneof![
                Just(Subject::AgentConnected),
                Just(Subject::AgentVersion),
                "[a-z][a-z0-9.-]{0,10}".prop_map(Subject::Attribute),
                Just(Subject::Ec2InstanceId),
                Just(Subject::RegisteredAt),
                Just(Subject::RunningTasksCount),
                Just(Subject::TaskGroup),
            ]
        }

        fn arb_literal(kind: Kind) -> BoxedStrategy<Literal> {
            let raw: BoxedStrategy<String> = match kind {
                Kind::Text => "[a-zA-Z0-9.:* ,()'&|!-]{0,8}".boxed(),
                Kind::Bool => prop_oneof![Just("true"), Just("FALSE")]
                    .prop_map(String::from)
                    .boxed(),
                Kind::Count => (0u32..100).prop_map(|n| n.to_string()).boxed(),
                Kind::Time => prop_oneof![
                    Just("2018-06-18"),
                    Just("2018-06-18T22:28:28Z"),
                    Just("2018-06-18T22:28:28+02:00"),
                    Just("2020-02-29T00:00:00.25"),
                ]
                .prop_map(String::from)
                .boxed(),
                Kind::Version => "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}".boxed(),
            };
            raw.prop_map(move |raw| {
                let value = match kind {
                    Kind::Text => Value::Text(raw.clone()),
                    Kind::Bool => Value::Bool(raw.eq_ignore_ascii_case("true")),
                    Kind::Count => Value::Count(raw.parse().unwrap()),
                    Kind::Time => Value::Time(parse_timestamp(&raw).unwrap()),
                    Kind::Version => Value::Version(parse_version(&raw).unwrap()),
                };
                Literal { raw, value }
            })
            .boxed()
        }

        fn arb_condition() -> impl Strategy<Value = Condition> {
            arb_subject().prop_flat_map(|subject| {
                let ops = subject.operators();
                let kind = subject.kind();
                (Just(subject), proptest::sample::select(ops)).prop_flat_map(
                    move |(subject, operator)| {
                        let argument: BoxedStrategy<Argument> = match operator {
                            Exists | NotExists => Just(Argument::None).boxed(),
                            In | NotIn => proptest::collection::vec(arb_literal(kind), 1..4)
                                .prop_map(Argument::List)
                                .boxed(),
                            Matches | NotMatches => prop_oneof![
                                Just("t2.*"),
                                Just(r"(t2|m5)\..*"),
                                Just("a b"),
                                Just("x{1,3}"),
                                Just("[a-z]+"),
                                Just("it's"),
                            ]
                            .prop_map(|p| Argument::Pattern(Pattern::new(p).unwrap()))
                            .boxed(),
                            _ => arb_literal(kind).prop_map(Argument::One).boxed(),
                        };
                        (Just(subject.clone()), Just(operator), argument).prop_map(
                            |(subject, operator, argument)| Condition {
                                subject,
                                operator,
                                argument,
                            },
                        )
                    },
                )
            })
        }

        fn arb_expression() -> impl Strategy<Value = Expression> {
            arb_condition()
                .prop_map(Expression::Condition)
                .prop_recursive(4, 24, 2, |inner| {
                    prop_oneof![
                        inner.clone().prop_map(|e| Expression::Not(Box::new(e))),
                        (inner.clone(), inner.clone())
                            .prop_map(|(a, b)| Expression::And(Box::new(a), Box::new(b))),
                        (inner.clone(), inner)
                            .prop_map(|(a, b)| Expression::Or(Box::new(a), Box::new(b))),
                    ]
                })
        }

        proptest! {
            /// The canonical display parses back to the same expression.
            #[test]
            fn display_round_trips(e in arb_expression()) {
                let shown = e.to_string();
                let parsed = Query::parse(&shown).map_err(|err| TestCaseError::fail(format!("{shown}: {err}")))?;
                prop_assert_eq!(parsed.expression(), &e, "{}", shown);
            }

            /// The parser never panics, and an error points inside (or just past) the input.
            #[test]
            fn parser_never_panics(s in "[a-zA-Z:=!<>~()\\[\\],' &|.*0-9_-]{0,40}", t in any::<String>()) {
                for input in [s, t] {
                    if let Err(e) = Query::parse(&input) {
                        prop_assert!(e.column >= 1 && e.column <= input.chars().count() + 1, "{e}");
                    }
                }
            }

            /// A negated operator is exactly the negation of its positive twin.
            #[test]
            fn negated_operators_negate(
                c in arb_condition(),
                zone in "[a-c]",
                groups in proptest::collection::vec("[a-c:]{1,3}", 0..3),
                connected in any::<bool>(),
            ) {
                let facts = Facts {
                    id: "i-1".into(),
                    attributes: [("a".to_string(), zone.clone()), (zone, "t2.micro".to_string())].into(),
                    connected,
                    version: Some("1.2.3".into()),
                    registered_at: Some("2018-06-18T22:28:28Z".into()),
                    groups,
                };
                if let Some(positive) = c.operator.negation_of() {
                    let twin = Condition { operator: positive, ..c.clone() };
                    prop_assert_eq!(c.matches(&facts), !twin.matches(&facts));
                }
                let not = Expression::Not(Box::new(Expression::Condition(c.clone())));
                prop_assert_eq!(not.matches(&facts), !c.matches(&facts));
            }
        }
    }
}
