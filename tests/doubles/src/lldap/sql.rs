//! What LLDAP's SQL layer does with a filter that the in-memory model does not show by itself:
//! SQLite's limit on the depth of an expression tree.
//!
//! API-NOTES-style: LLDAP (sea-orm over SQLite, its default database) turns a user or group
//! filter into one SQL `WHERE` expression. SQLite refuses a statement whose expression tree is
//! deeper than `SQLITE_MAX_EXPR_DEPTH` (1000) with `Expression tree is too large (maximum depth
//! 1000)`; sea-orm reports it as a query error and LLDAP's `DomainError::DatabaseError` prefixes
//! it, so GraphQL clients read
//! ``Database error: `Query Error: error returned from database: (code: 1) Expression tree is too large (maximum depth 1000)` ``.
//!
//! The depth is computed the way SQLite counts it (`exprSetHeight`, `sqlite3ResolveExprNames`,
//! `sqlite3ProcessJoin` in the SQLite LLDAP bundles), over the statements sea-orm builds:
//!
//! * a bound value or a literal has height 1, a column (sea-orm always qualifies it:
//!   `"users"."user_id"`) 2, an operator or function 1 + the height of its highest operand: an
//!   equality `"users"."user_id" = ?` is 3, `lower("users"."display_name") LIKE ?` 4, `NOT (x)`
//!   1 + x;
//! * sea-query renders an `any`/`all` of n children as `c1 OR c2 OR … OR cn`, which SQLite
//!   parses into a left-deep tree of n − 1 `OR` nodes: c1 and c2 sit under all of them, c_i
//!   (i ≥ 2) under n − i + 1;
//! * `x IN (SELECT y … WHERE w)` has height 1 + max(2, height(w)); before names are resolved,
//!   SQLite moves the `ON` clause of every join into the `WHERE` (`WHERE w AND on1 AND on2`, one
//!   level more per join); and while it resolves the names of an expression it adds the height of
//!   every subquery's (joined) `WHERE` to the height of the enclosing expression
//!   (`pParse->nHeight`). What is checked against the limit is that *resolve height*: the height
//!   of a statement's `WHERE` plus the resolve heights of the subqueries nested in it.
//!
//! LLDAP's `list_users` runs two statements with the filter f: the user ⋈ memberships ⋈ groups
//! join (`WHERE f` + two `ON`s) and the attribute query (`WHERE "user_attributes"."user_id" IN
//! (SELECT "users"."user_id" FROM users WHERE f)`). The second is the deeper one: an `any` of n
//! `user_id` equalities (height n + 2) passes up to n = 497 and fails from n = 498 on.
//! `list_groups` nests the filter once more (`group_id IN (SELECT … JOIN … WHERE f)` in both of
//! its statements): an `or` of n `cn` equalities passes up to n = 329. These limits were measured
//! with the SQLite shell on the statements written out as sea-orm renders them (996 for the first
//! user statement, 497 for the second; 496 and 329 for the group statements), and the unit tests
//! below pin the model to them.

use super::model::{GroupFilter, LldapError, UserFilter};

/// SQLite's default `SQLITE_MAX_EXPR_DEPTH`.
pub const MAX_EXPR_DEPTH: u32 = 1000;

/// The text SQLite gives when the limit is exceeded.
pub const EXPR_TOO_DEEP: &str = "Expression tree is too large (maximum depth 1000)";

/// The error LLDAP reports for a query SQLite refused (`DomainError::DatabaseError` over
/// sea-orm's `DbErr::Query` over sqlx's database error).
pub fn too_deep_error() -> LldapError {
    LldapError(format!(
        "Database error: `Query Error: error returned from database: (code: 1) {EXPR_TOO_DEEP}`"
    ))
}

/// Height and resolve height of one SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// SQLite's `nHeight` of the expression (as parsed).
    pub height: u32,
    /// What resolving it adds on top of `height`: the highest resolve height of the subqueries
    /// in it (0 without subqueries).
    pub nested: u32,
}

/// Height of a qualified column reference (`"t"."c"`: a `TK_DOT` over two names).
const COLUMN: u32 = 2;
/// Height of `"t"."c" = ?`.
const EQ: u32 = COLUMN + 1;

impl Depth {
    const fn leaf(height: u32) -> Self {
        Self { height, nested: 0 }
    }

    /// What SQLite checks against the limit when this is a whole `WHERE`.
    pub fn resolve(self) -> u32 {
        self.height + self.nested
    }

    /// The `WHERE` of a select with `joins` joins, as resolved (`WHERE w AND on1 AND on2`; every
    /// `ON` here is an equality of two columns).
    fn joined(self, joins: u32) -> Self {
        let mut height = self.height;
        for _ in 0..joins {
            height = 1 + height.max(EQ);
        }
        Self {
            height,
            nested: self.nested,
        }
    }

    /// `"t"."c" IN (SELECT "u"."c" FROM … WHERE w)` with `joins` joins in the subquery.
    fn in_subquery(w: Depth, joins: u32) -> Self {
        Self {
            height: 1 + w.height.max(COLUMN),
            nested: w.joined(joins).resolve(),
        }
    }

    /// A unary operator (`NOT`).
    fn unary(self) -> Self {
        Self {
            height: self.height + 1,
            nested: self.nested,
        }
    }

    /// `c1 OP c2 OP … OP cn` parsed left-deep; an empty list is a bound literal.
    fn chain(children: impl IntoIterator<Item = Depth>) -> Self {
        let mut out = Self::leaf(1);
        let children: Vec<Depth> = children.into_iter().collect();
        let n = u32::try_from(children.len()).unwrap_or(u32::MAX);
        for (i, c) in (0u32..).zip(&children) {
            // Operators above c_i: n − 1 for the first two, n − i for the (i+1)-th.
            let above = if i == 0 { n - 1 } else { n - i };
            out.height = out.height.max(above.saturating_add(c.height));
            out.nested = out.nested.max(c.nested);
        }
        out
    }
}

/// `"user_attributes"."attribute_name" = ? AND "user_attributes"."value" = ?` (or `AND TRUE` for
/// presence).
const ATTRIBUTE_WHERE: Depth = Depth::leaf(EQ + 1);

/// The SQL depth of a user filter as `get_user_filter_expr` builds it.
pub fn user_filter(f: &UserFilter) -> Depth {
    match f {
        UserFilter::True | UserFilter::False => Depth::leaf(1),
        UserFilter::UserId(_)
        | UserFilter::Email(_)
        | UserFilter::DisplayName(_)
        | UserFilter::Uuid(_)
        | UserFilter::Date(..)
        | UserFilter::UserIdLike(_) => Depth::leaf(EQ),
        // `lower("users"."c") LIKE ?`
        UserFilter::Like(..) => Depth::leaf(EQ + 1),
        UserFilter::Attribute(..) | UserFilter::AttributePresent(_) => {
            Depth::in_subquery(ATTRIBUTE_WHERE, 0)
        }
        // `user_id IN (SELECT … LEFT JOIN memberships LEFT JOIN groups r1 WHERE r1.<column> = ?)`
        UserFilter::MemberOf(_) | UserFilter::MemberOfId(_) => {
            Depth::in_subquery(Depth::leaf(EQ), 2)
        }
        UserFilter::And(v) | UserFilter::Or(v) => Depth::chain(v.iter().map(user_filter)),
        UserFilter::Not(f) => user_filter(f).unary(),
    }
}

/// The SQL depth of a group filter as `get_group_filter_expr` builds it.
pub fn group_filter(f: &GroupFilter) -> Depth {
    match f {
        GroupFilter::True | GroupFilter::False => Depth::leaf(1),
        GroupFilter::DisplayName(_) | GroupFilter::Uuid(_) | GroupFilter::GroupId(_) => {
            Depth::leaf(EQ)
        }
        GroupFilter::DisplayNameLike(_) => Depth::leaf(EQ + 1),
        // `group_id IN (SELECT group_id FROM memberships WHERE user_id = ?)`
        GroupFilter::Member(_) => Depth::in_subquery(Depth::leaf(EQ), 0),
        GroupFilter::Attribute(..) | GroupFilter::AttributePresent(_) => {
            Depth::in_subquery(ATTRIBUTE_WHERE, 0)
        }
        GroupFilter::And(v) | GroupFilter::Or(v) => Depth::chain(v.iter().map(group_filter)),
        GroupFilter::Not(f) => group_filter(f).unary(),
    }
}

/// The deepest resolve height of the statements `list_users` runs with this filter.
pub fn user_list_depth(f: &UserFilter) -> u32 {
    let w = user_filter(f);
    // `SELECT … FROM users LEFT JOIN memberships r0 ON … LEFT JOIN groups r1 ON … WHERE f`
    let join = w.joined(2).resolve();
    // `SELECT … FROM user_attributes WHERE user_id IN (SELECT user_id FROM users WHERE f)`
    let attributes = Depth::in_subquery(w, 0).resolve();
    join.max(attributes)
}

/// The deepest resolve height of the statements `list_groups` runs with this filter.
pub fn group_list_depth(f: &GroupFilter) -> u32 {
    // `group_id IN (SELECT group_id FROM groups LEFT JOIN memberships LEFT JOIN users WHERE f)`
    let w = Depth::in_subquery(group_filter(f), 2);
    // `SELECT … FROM groups LEFT JOIN memberships ON … WHERE <w>`
    let join = w.joined(1).resolve();
    // `SELECT … FROM group_attributes WHERE group_id IN (SELECT group_id FROM groups WHERE <w>)`
    let attributes = Depth::in_subquery(w, 0).resolve();
    join.max(attributes)
}

/// Refuses a user filter that SQLite would refuse.
pub fn check_user_list(f: &UserFilter) -> Result<(), LldapError> {
    if user_list_depth(f) > MAX_EXPR_DEPTH {
        return Err(too_deep_error());
    }
    Ok(())
}

/// Refuses a group filter that SQLite would refuse.
pub fn check_group_list(f: &GroupFilter) -> Result<(), LldapError> {
    if group_list_depth(f) > MAX_EXPR_DEPTH {
        return Err(too_deep_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_eq(n: usize) -> UserFilter {
        UserFilter::Or(
            (0..n)
                .map(|i| UserFilter::UserId(format!("u{i}")))
                .collect(),
        )
    }

    fn any_name(n: usize) -> GroupFilter {
        GroupFilter::Or(
            (0..n)
                .map(|i| GroupFilter::DisplayName(format!("g{i}")))
                .collect(),
        )
    }

    fn plain(f: &UserFilter) -> u32 {
        user_filter(f).resolve()
    }

    /// The largest n for which SQLite accepted the statement, measured with the SQLite shell
    /// on the statements as sea-orm renders them (see the module doc).
    #[test]
    fn limits_measured_with_sqlite() {
        // A plain `WHERE c1 OR … OR cn` of qualified equalities: 998; of literals: 1000;
        // of `lower(col) LIKE ?`: 997; of `IN (SELECT … WHERE a = ? AND b = ?)`: 992;
        // of `IN (SELECT … LEFT JOIN … LEFT JOIN … WHERE r1.c = ?)`: 992.
        assert_eq!(plain(&any_eq(998)), 1000);
        assert_eq!(plain(&any_eq(999)), 1001);
        assert_eq!(plain(&UserFilter::Or(vec![UserFilter::True; 1000])), 1000);
        let like = UserFilter::Like("mail", "a%".into());
        assert_eq!(plain(&UserFilter::Or(vec![like; 997])), 1000);
        let attr = UserFilter::Attribute("a".into(), "v".into());
        assert_eq!(plain(&UserFilter::Or(vec![attr.clone(); 992])), 1000);
        assert_eq!(plain(&UserFilter::Or(vec![attr; 993])), 1001);
        let member = UserFilter::MemberOf("g".into());
        assert_eq!(plain(&UserFilter::Or(vec![member.clone(); 992])), 1000);
        assert_eq!(plain(&UserFilter::Or(vec![member; 993])), 1001);
        // The user ⋈ memberships ⋈ groups statement: 996; the attribute statement: 497.
        assert_eq!(user_filter(&any_eq(996)).joined(2).resolve(), 1000);
        assert_eq!(
            Depth::in_subquery(user_filter(&any_eq(497)), 0).resolve(),
            999
        );
        assert_eq!(
            Depth::in_subquery(user_filter(&any_eq(498)), 0).resolve(),
            1001
        );
        // The two group statements: 496 and 329.
        let w = |n| Depth::in_subquery(group_filter(&any_name(n)), 2);
        assert_eq!(w(496).joined(1).resolve(), 1000);
        assert_eq!(w(497).joined(1).resolve(), 1002);
        assert_eq!(Depth::in_subquery(w(329), 0).resolve(), 998);
        assert_eq!(Depth::in_subquery(w(330), 0).resolve(), 1001);
    }

    #[test]
    fn user_and_group_lists() {
        assert!(check_user_list(&UserFilter::True).is_ok());
        assert!(check_user_list(&any_eq(100)).is_ok());
        assert!(check_user_list(&any_eq(497)).is_ok());
        assert!(check_user_list(&any_eq(498)).is_err());
        let e = check_user_list(&any_eq(1000)).unwrap_err();
        assert!(e.0.contains(EXPR_TOO_DEEP), "{e}");
        assert!(check_group_list(&GroupFilter::True).is_ok());
        assert!(check_group_list(&any_name(329)).is_ok());
        assert!(check_group_list(&any_name(330)).is_err());
        // Nesting counts too: `not` adds one level.
        let not = UserFilter::Not(Box::new(any_eq(497)));
        assert!(check_user_list(&not).is_err());
    }
}
