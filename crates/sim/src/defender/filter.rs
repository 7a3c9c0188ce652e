//! The OData `$filter` subset the indicators list takes: comparisons (`eq ne gt ge lt le`) of
//! a documented filterable property with a literal, combined with `and`, `or`, `not` and
//! parentheses, e.g. `application eq 'ctiport' and indicatorType eq 'IpAddress'`.

use serde_json::Value;

use crate::microsoft::stamp;

/// Properties `$filter` accepts (the List Indicators page), except the list-valued
/// `rbacGroupNames`/`rbacGroupIds` and `createdByDisplayName`, which the sim does not model.
const FILTERABLE: [&str; 10] = [
    "application",
    "expirationTime",
    "generateAlert",
    "title",
    "indicatorValue",
    "indicatorType",
    "creationTimeDateTimeUtc",
    "createdBy",
    "action",
    "severity",
];

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Text(String),
    Word(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Text(String),
    Number(f64),
}

/// A parsed `$filter`.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare(String, OpLit),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct OpLit(Op, Literal);

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                    }
                }
                out.push(Token::Text(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '\'' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                _ => Err("a parenthesis is not closed".into()),
            };
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, String> {
        let property = match self.next() {
            Some(Token::Word(w)) if FILTERABLE.contains(&w.as_str()) => w,
            Some(Token::Word(w)) => {
                return Err(format!("the property '{w}' cannot be used in $filter"));
            }
            other => return Err(format!("a property name was expected, found {other:?}")),
        };
        let op = match self.next() {
            Some(Token::Word(w)) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                other => return Err(format!("the operator '{other}' is not supported")),
            },
            other => return Err(format!("an operator was expected, found {other:?}")),
        };
        let literal = match self.next() {
            Some(Token::Text(s)) => Literal::Text(s),
            Some(Token::Word(w)) => match w.as_str() {
                "null" => Literal::Null,
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                // OData writes DateTimeOffset literals bare: 2024-01-01T00:00:00Z.
                _ if stamp::parse(&w, false).is_some() => Literal::Text(w),
                _ => w
                    .parse()
                    .map(Literal::Number)
                    .map_err(|_| format!("'{w}' is not a literal"))?,
            },
            other => return Err(format!("a literal was expected, found {other:?}")),
        };
        Ok(Filter::Compare(property, OpLit(op, literal)))
    }
}

/// Parses a `$filter` value; the error says what is wrong.
pub fn parse(text: &str) -> Result<Filter, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let filter = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err("unexpected text after the filter".into());
    }
    Ok(filter)
}

fn compare(value: Option<&Value>, OpLit(op, literal): &OpLit) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (value, literal) {
        (None | Some(Value::Null), Literal::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), _) | (_, Literal::Null) => None,
        (Some(Value::Bool(a)), Literal::Bool(b)) => Some(a.cmp(b)),
        (Some(Value::Number(a)), Literal::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Some(Value::String(a)), Literal::Text(b)) => {
            match (stamp::parse(a, false), stamp::parse(b, false)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => Some(a.as_str().cmp(b.as_str())),
            }
        }
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, Some(o)) => o.is_eq(),
        (Op::Ne, Some(o)) => o.is_ne(),
        // Values that cannot be compared (a null against a string) are unequal.
        (Op::Ne, None) => true,
        (Op::Gt, Some(o)) => o.is_gt(),
        (Op::Ge, Some(o)) => o.is_ge(),
        (Op::Lt, Some(o)) => o.is_lt(),
        (Op::Le, Some(o)) => o.is_le(),
        (_, None) => false,
    }
}

impl Filter {
    /// Whether an indicator (as the API shows it) passes.
    pub fn matches(&self, entity: &Value) -> bool {
        match self {
            Filter::Compare(property, oplit) => compare(entity.get(property), oplit),
            Filter::And(a, b) => a.matches(entity) && b.matches(entity),
            Filter::Or(a, b) => a.matches(entity) || b.matches(entity),
            Filter::Not(a) => !a.matches(entity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_as_odata_does() {
        let e = json!({"application": "ctiport", "indicatorType": "IpAddress", "action": "Alert",
                       "expirationTime": "2030-01-01T00:00:00Z", "generateAlert": true, "title": "it's"});
        let yes = |f: &str| parse(f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(&e);
        assert!(yes("application eq 'ctiport'"));
        assert!(yes(
            "application eq 'ctiport' and indicatorType eq 'IpAddress'"
        ));
        assert!(!yes("application eq 'ctiport' and indicatorType eq 'Url'"));
        assert!(yes(
            "(indicatorType eq 'Url' or indicatorType eq 'IpAddress') and not (action eq 'Block')"
        ));
        assert!(yes("expirationTime gt 2029-12-31T00:00:00Z"));
        assert!(!yes("expirationTime lt 2029-12-31T00:00:00Z"));
        assert!(yes("generateAlert eq true"));
        assert!(yes("title eq 'it''s'"));
        assert!(yes("severity eq null"));
        assert!(yes("application ne 'other'"));
        for bad in [
            "application",
            "application eq",
            "foo eq 'x'",
            "application like 'x'",
            "(application eq 'x'",
            "application eq 'x' junk",
            "application eq 'x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
