//! 凡提四必 readiness (DESIGN §6a): the four musts of a promotion judged from what the organization department sees — archive review, personal-matters check, the discipline commission's opinion, specific petitions.

use time::Date;

use super::rules::{RuleParams, Verdict, add_months};

/// One of the four musts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// 档案必审
    ArchiveReview,
    /// 个人有关事项报告必核
    PersonalMatters,
    /// 纪检监察机关意见必听
    DisciplineOpinion,
    /// 线索具体的信访举报必查
    SpecificPetitions,
}

impl Item {
    pub const ALL: [Item; 4] = [
        Item::ArchiveReview,
        Item::PersonalMatters,
        Item::DisciplineOpinion,
        Item::SpecificPetitions,
    ];
}

/// How an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Satisfied,
    Missing,
    Blocking,
}

/// An archive review recorded for the request and cadre.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub name: String,
    pub date: Date,
    pub discrepancies: bool,
    /// When it was written, in the exchange's order (the record's revision).
    pub written: i64,
}

/// A personal-matters check of the cadre.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub report_year: i32,
    pub check_date: Date,
    pub concealed: bool,
}

/// The reply in force for the cadre (the latest, corrections included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub name: String,
    pub verdict: Verdict,
    pub stale: bool,
}

/// A petition flagged specific (线索具体).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Petition {
    pub name: String,
    /// CLOSED or REJECTED.
    pub done: bool,
}

/// What decides the four items, as the organization department sees them.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub reviews: Vec<Review>,
    pub checks: Vec<Check>,
    pub reply: Option<Reply>,
    pub specific_petitions: Vec<Petition>,
}

/// One item's standing, why, and the records (or reply) that decide it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub item: Item,
    pub state: State,
    pub reason: String,
    pub cited: Vec<String>,
}

fn judged(item: Item, state: State, reason: impl Into<String>, cited: Vec<String>) -> Judged {
    Judged {
        item,
        state,
        reason: reason.into(),
        cited,
    }
}

/// The four items at `as_of`, in the order of 凡提四必.
pub fn judge(e: &Evidence, as_of: Date, p: &RuleParams) -> Vec<Judged> {
    vec![
        archive(e, as_of),
        personal_matters(e, as_of, p),
        opinion(e),
        petitions(e),
    ]
}

/// 档案必审: the review written last for this request decides — by when it
/// was written, not by the date it gives, so that no review dated ahead can
/// outrank the ones that follow it.
fn archive(e: &Evidence, _as_of: Date) -> Judged {
    let item = Item::ArchiveReview;
    match e.reviews.iter().max_by_key(|r| r.written) {
        None => judged(
            item,
            State::Missing,
            "尚未记录本次征询的干部档案审核",
            vec![],
        ),
        Some(r) if r.discrepancies => judged(
            item,
            State::Blocking,
            format!("{} 档案审核发现“三龄二历一身份”存在问题", r.date),
            vec![r.name.clone()],
        ),
        Some(r) => judged(
            item,
            State::Satisfied,
            format!("{} 档案审核一致", r.date),
            vec![r.name.clone()],
        ),
    }
}

/// 个人有关事项报告必核: a check of the last or current report year; a
/// concealment whose bar still runs blocks.
fn personal_matters(e: &Evidence, as_of: Date, p: &RuleParams) -> Judged {
    let item = Item::PersonalMatters;
    let barring: Vec<&Check> = e
        .checks
        .iter()
        .filter(|c| {
            c.concealed
                && c.check_date <= as_of
                && add_months(c.check_date, p.concealed_personal_matters_months) > as_of
        })
        .collect();
    if !barring.is_empty() {
        return judged(
            item,
            State::Blocking,
            "查核发现瞒报个人有关事项，尚在影响期内",
            barring.iter().map(|c| c.name.clone()).collect(),
        );
    }
    let recent: Vec<&Check> = e
        .checks
        .iter()
        .filter(|c| c.report_year >= as_of.year() - 1)
        .collect();
    if recent.is_empty() {
        return judged(
            item,
            State::Missing,
            format!(
                "尚无 {} 或 {} 年度个人有关事项报告的查核",
                as_of.year() - 1,
                as_of.year()
            ),
            vec![],
        );
    }
    judged(
        item,
        State::Satisfied,
        "已查核上一或本年度个人有关事项报告",
        recent.iter().map(|c| c.name.clone()).collect(),
    )
}

/// 纪检监察机关意见必听: the reply in force decides.
fn opinion(e: &Evidence) -> Judged {
    let item = Item::DisciplineOpinion;
    match &e.reply {
        None => judged(item, State::Missing, "纪检监察机关尚未回复廉政意见", vec![]),
        Some(r) if r.stale => judged(
            item,
            State::Missing,
            "廉政意见回复已过时（STALE），须重新征询",
            vec![r.name.clone()],
        ),
        Some(r) if r.verdict >= Verdict::Defer => judged(
            item,
            State::Blocking,
            format!("廉政意见为“{}”", r.verdict.zh()),
            vec![r.name.clone()],
        ),
        Some(r) => judged(
            item,
            State::Satisfied,
            format!("廉政意见为“{}”", r.verdict.zh()),
            vec![r.name.clone()],
        ),
    }
}

/// 线索具体的信访举报必查: every specific petition closed or rejected.
fn petitions(e: &Evidence) -> Judged {
    let item = Item::SpecificPetitions;
    let open: Vec<String> = e
        .specific_petitions
        .iter()
        .filter(|p| !p.done)
        .map(|p| p.name.clone())
        .collect();
    if !open.is_empty() {
        return judged(item, State::Blocking, "有线索具体的信访举报尚未办结", open);
    }
    judged(
        item,
        State::Satisfied,
        "线索具体的信访举报均已办结或不予受理",
        e.specific_petitions
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests;
