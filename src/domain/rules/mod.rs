//! Integrity-opinion rules (DESIGN §6): a draft verdict with its reasons, cited records and promotion bar, as pure functions.

use time::Date;

mod params;
pub mod periods;

pub use params::RuleParams;
pub use periods::add_months;
use periods::{Bar, Note, Period, bar_reason};

/// Stable reason identifiers; the dossier maps them to its computed flags.
pub mod rule_id {
    pub const PARTY_SANCTION_PERIOD: &str = "party_sanction_period";
    pub const STATE_SANCTION_PERIOD: &str = "state_sanction_period";
    pub const ADMONITION_PERIOD: &str = "admonition_period";
    pub const ORG_HANDLING_PERIOD: &str = "org_handling_period";
    pub const CONCEALED_PERSONAL_MATTERS_PERIOD: &str = "concealed_personal_matters_period";
    pub const OPEN_CLUE: &str = "open_clue";
    pub const UNCLOSED_SPECIFIC_PETITION: &str = "unclosed_specific_petition";
    pub const FINDING_TRANSFERRED_TO_DISCIPLINE: &str = "finding_transferred_to_discipline";
    pub const FINDING_PAST_RECTIFICATION_DEADLINE: &str = "finding_past_rectification_deadline";
    pub const MATTER_ON_RECORD: &str = "matter_on_record";

    /// Every rule id, in the order a draft lists the most severe first.
    pub const ALL: [&str; 10] = [
        PARTY_SANCTION_PERIOD,
        STATE_SANCTION_PERIOD,
        ADMONITION_PERIOD,
        ORG_HANDLING_PERIOD,
        CONCEALED_PERSONAL_MATTERS_PERIOD,
        OPEN_CLUE,
        UNCLOSED_SPECIFIC_PETITION,
        FINDING_TRANSFERRED_TO_DISCIPLINE,
        FINDING_PAST_RECTIFICATION_DEADLINE,
        MATTER_ON_RECORD,
    ];

    /// The zh-CN name officials read for a rule id (the id itself is for
    /// systems); empty for an unknown id.
    pub fn title(id: &str) -> &'static str {
        match id {
            PARTY_SANCTION_PERIOD => "党纪处分影响期",
            STATE_SANCTION_PERIOD => "政务处分期",
            ADMONITION_PERIOD => "诫勉影响期",
            ORG_HANDLING_PERIOD => "组织处理影响期",
            CONCEALED_PERSONAL_MATTERS_PERIOD => "瞒报个人有关事项影响期",
            OPEN_CLUE => "问题线索尚未办结",
            UNCLOSED_SPECIFIC_PETITION => "线索具体的信访举报尚未办结",
            FINDING_TRANSFERRED_TO_DISCIPLINE => "移送纪检监察机关的问题尚未整改",
            FINDING_PAST_RECTIFICATION_DEADLINE => "发现问题逾期未整改",
            MATTER_ON_RECORD => "有问题记录",
            _ => "",
        }
    }
}

/// The four reply verdicts; the derived order is severity, so the most severe is the `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// 未发现影响使用的问题
    NoIssue,
    /// 有问题但不影响使用
    IssueNotBlocking,
    /// 暂缓
    Defer,
    /// 不同意
    NotAgree,
}

impl Verdict {
    /// The proto enum suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoIssue => "NO_ISSUE",
            Verdict::IssueNotBlocking => "ISSUE_NOT_BLOCKING",
            Verdict::Defer => "DEFER",
            Verdict::NotAgree => "NOT_AGREE",
        }
    }

    /// The verdict named by [`Self::as_str`]'s text.
    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::NoIssue,
            Verdict::IssueNotBlocking,
            Verdict::Defer,
            Verdict::NotAgree,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The wording used in replies.
    pub fn zh(self) -> &'static str {
        match self {
            Verdict::NoIssue => "未发现影响使用的问题",
            Verdict::IssueNotBlocking => "有问题但不影响使用",
            Verdict::Defer => "暂缓",
            Verdict::NotAgree => "不同意",
        }
    }
}

/// The first day a promotion bar no longer applies. The derived order (none < any date <
/// permanent, dates by time) is the order in which several bars combine: the greatest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BarredUntil {
    None,
    Date(Date),
    Permanent,
}

/// One applying rule row for one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// One of [`rule_id`].
    pub rule: &'static str,
    pub verdict: Verdict,
    /// zh-CN, then a short English gloss after " / ".
    pub description: String,
    /// Resource names of the records the reason rests on.
    pub records: Vec<String>,
    /// For period rules, the end of this record's bar even when it has already ended or
    /// does not block; `None` for rules without a period.
    pub barred_until: BarredUntil,
}

/// The rule-computed draft of an integrity opinion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The most severe verdict among the reasons; `NoIssue` when there are none.
    pub verdict: Verdict,
    /// Every applying row, most severe first, in input order within a verdict.
    pub reasons: Vec<Reason>,
    /// The latest end among the bars that block at the as-of date; `None` when nothing blocks.
    pub barred_until: BarredUntil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    Party,
    State,
}

/// 党纪处分
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartyType {
    /// 警告
    Warning,
    /// 严重警告
    SeriousWarning,
    /// 撤销党内职务
    RemovalFromPartyPost,
    /// 留党察看 (years in `probation_years`)
    Probation,
    /// 开除党籍
    Expulsion,
}

/// 政务处分
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateType {
    /// 警告
    Warning,
    /// 记过
    Demerit,
    /// 记大过
    MajorDemerit,
    /// 降级
    Demotion,
    /// 撤职
    DismissalFromPost,
    /// 开除
    ExpulsionFromService,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdmonishmentKind {
    /// 谈话提醒
    TalkReminder,
    /// 批评教育
    Criticism,
    /// 责令检查
    OrderedSelfReview,
    /// 诫勉
    Admonition,
}

/// 问题线索处置方式
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposal {
    /// 受理登记 (not yet decided)
    Registered,
    /// 谈话函询
    TalkOrInquiry,
    /// 初步核实
    PreliminaryCheck,
    /// 立案审查调查
    CaseOpened,
    /// 暂存待查
    Shelved,
    /// 予以了结
    Closed,
}

/// 组织处理
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrgHandlingKind {
    /// 停职检查
    SuspensionForReview,
    /// 调整职务
    Reassignment,
    /// 责令辞职
    OrderedResignation,
    /// 免职
    RemovalFromPost,
    /// 降职
    DemotionInRank,
}

/// 个人有关事项查核结果
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PmResult {
    /// 如实
    Consistent,
    /// 漏报
    UnderReported,
    /// 瞒报
    Concealed,
}

/// What the rules need of one record. `name` is the record's resource name; `active == false`
/// (retracted) makes the record count for nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    Sanction {
        name: String,
        active: bool,
        track: Track,
        /// Set when `track` is `Party`.
        party: Option<PartyType>,
        /// Set when `track` is `State`.
        state: Option<StateType>,
        /// 1 or 2 for 留党察看; ignored otherwise.
        probation_years: u32,
        /// Decision (approval) date: party periods run from it.
        decision_date: Date,
        /// Effective date: state periods run from it.
        effective_date: Date,
    },
    Admonishment {
        name: String,
        active: bool,
        kind: AdmonishmentKind,
        date: Date,
    },
    Clue {
        name: String,
        active: bool,
        disposal: Disposal,
        /// Status OPEN (not CONCLUDED).
        open: bool,
    },
    OrgHandling {
        name: String,
        active: bool,
        kind: OrgHandlingKind,
        date: Date,
    },
    PersonalMatters {
        name: String,
        active: bool,
        result: PmResult,
        check_date: Date,
    },
    Evaluation {
        name: String,
        active: bool,
    },
    AuditEngagement {
        name: String,
        active: bool,
    },
    AuditFinding {
        name: String,
        active: bool,
        transferred_to_discipline: bool,
        /// Rectification status DONE.
        rectification_done: bool,
        deadline: Option<Date>,
    },
    Petition {
        name: String,
        active: bool,
        /// 线索具体
        specific: bool,
        /// Status CLOSED or REJECTED.
        closed_or_rejected: bool,
    },
    /// 巡视巡察反馈问题: judged like an audit finding (DESIGN §6a).
    InspectionFinding {
        name: String,
        active: bool,
        transferred_to_discipline: bool,
        /// Rectification status DONE.
        rectification_done: bool,
        deadline: Option<Date>,
    },
    /// 干部档案审核: not a matter.
    ArchiveReview {
        name: String,
        active: bool,
    },
}

impl Fact {
    pub fn name(&self) -> &str {
        match self {
            Fact::Sanction { name, .. }
            | Fact::Admonishment { name, .. }
            | Fact::Clue { name, .. }
            | Fact::OrgHandling { name, .. }
            | Fact::PersonalMatters { name, .. }
            | Fact::Evaluation { name, .. }
            | Fact::AuditEngagement { name, .. }
            | Fact::AuditFinding { name, .. }
            | Fact::Petition { name, .. }
            | Fact::InspectionFinding { name, .. }
            | Fact::ArchiveReview { name, .. } => name,
        }
    }

    /// False for a retracted record.
    pub fn is_active(&self) -> bool {
        match self {
            Fact::Sanction { active, .. }
            | Fact::Admonishment { active, .. }
            | Fact::Clue { active, .. }
            | Fact::OrgHandling { active, .. }
            | Fact::PersonalMatters { active, .. }
            | Fact::Evaluation { active, .. }
            | Fact::AuditEngagement { active, .. }
            | Fact::AuditFinding { active, .. }
            | Fact::Petition { active, .. }
            | Fact::InspectionFinding { active, .. }
            | Fact::ArchiveReview { active, .. } => *active,
        }
    }

    /// A *matter on record* (DESIGN §6, §6a): any active sanction, admonishment, clue,
    /// organisational handling, audit or inspection finding or petition, or a personal-matters
    /// check that was not consistent.
    pub fn is_matter(&self) -> bool {
        self.is_active()
            && match self {
                Fact::Sanction { .. }
                | Fact::Admonishment { .. }
                | Fact::Clue { .. }
                | Fact::OrgHandling { .. }
                | Fact::AuditFinding { .. }
                | Fact::Petition { .. }
                | Fact::InspectionFinding { .. } => true,
                Fact::PersonalMatters { result, .. } => *result != PmResult::Consistent,
                Fact::Evaluation { .. }
                | Fact::AuditEngagement { .. }
                | Fact::ArchiveReview { .. } => false,
            }
    }
}

/// The draft opinion for one cadre at `as_of`, from the records the caller may see.
///
/// A period of N months from `s` bars every day `d` with `s <= d < add_months(s, N)`. A bar
/// that has ended (end on or before `as_of`) is reported as `IssueNotBlocking`: the record is
/// still a matter. A bar that starts after `as_of` (a decision or effective date later than the
/// as-of date) is a decision the exchange already holds, and any appointment this opinion
/// supports would fall inside or just before it, so by default it blocks (`NotAgree`) and its
/// reason says it has not started; `params.bar_not_yet_started_blocks = false` reports it as a
/// matter instead. Rules for open clues, unclosed specific petitions and findings follow
/// DESIGN §6; every other matter is listed under [`rule_id::MATTER_ON_RECORD`]. The verdict
/// does not depend on the request's purpose.
pub fn draft(facts: &[Fact], as_of: Date, params: &RuleParams) -> Draft {
    let mut reasons = Vec::new();
    for fact in facts.iter().filter(|f| f.is_active()) {
        evaluate(fact, as_of, params, &mut reasons);
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.verdict));
    let verdict = reasons
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::NoIssue);
    let barred_until = reasons
        .iter()
        .filter(|r| r.verdict == Verdict::NotAgree)
        .map(|r| r.barred_until)
        .max()
        .unwrap_or(BarredUntil::None);
    Draft {
        verdict,
        reasons,
        barred_until,
    }
}

/// The reasons one active record gives, appended to `out` in the order `draft` reports them
/// among reasons of the same verdict.
fn evaluate(fact: &Fact, as_of: Date, p: &RuleParams, out: &mut Vec<Reason>) {
    let name = fact.name();
    match fact {
        Fact::Sanction {
            track,
            party,
            state,
            probation_years,
            decision_date,
            effective_date,
            ..
        } => out.push(match (track, party, state) {
            (Track::Party, Some(kind), _) => {
                party_sanction(name, *kind, *probation_years, *decision_date, as_of, p)
            }
            (Track::State, _, Some(kind)) => state_sanction(name, *kind, *effective_date, as_of, p),
            // Input validation rejects a sanction without its type; should one slip through,
            // it is still a matter, but no period can be computed for it.
            _ => matter(
                name,
                "处分种类不明，无法计算影响期 / sanction of unknown type",
            ),
        }),
        Fact::Admonishment { kind, date, .. } => {
            out.push(admonishment(name, *kind, *date, as_of, p));
        }
        Fact::OrgHandling { kind, date, .. } => {
            out.push(org_handling(name, *kind, *date, as_of, p));
        }
        Fact::PersonalMatters {
            result, check_date, ..
        } => out.extend(personal_matters(name, *result, *check_date, as_of, p)),
        Fact::Clue { disposal, open, .. } => out.push(clue(name, *disposal, *open)),
        Fact::Petition {
            specific,
            closed_or_rejected,
            ..
        } => out.push(petition(name, *specific, *closed_or_rejected)),
        Fact::AuditFinding {
            transferred_to_discipline,
            rectification_done,
            deadline,
            ..
        } => out.extend(finding(
            name,
            "审计发现问题 / audit finding",
            *transferred_to_discipline,
            *rectification_done,
            *deadline,
            as_of,
        )),
        Fact::InspectionFinding {
            transferred_to_discipline,
            rectification_done,
            deadline,
            ..
        } => out.extend(finding(
            name,
            "巡视巡察反馈问题 / inspection finding",
            *transferred_to_discipline,
            *rectification_done,
            *deadline,
            as_of,
        )),
        Fact::Evaluation { .. } | Fact::AuditEngagement { .. } | Fact::ArchiveReview { .. } => {}
    }
}

/// A party sanction bars from its decision (approval) date.
fn party_sanction(
    name: &str,
    kind: PartyType,
    probation_years: u32,
    decision_date: Date,
    as_of: Date,
    p: &RuleParams,
) -> Reason {
    let (label, period) = match kind {
        PartyType::Warning => ("党纪警告", Period::Months(p.party_warning_months)),
        PartyType::SeriousWarning => ("严重警告", Period::Months(p.party_serious_warning_months)),
        PartyType::RemovalFromPartyPost => (
            "撤销党内职务",
            Period::Months(p.party_removal_from_post_months),
        ),
        PartyType::Probation => {
            // The 条例 allows only one or two years; validation rejects anything
            // else, so clamping only guards against a mapping slip.
            let years = probation_years.clamp(1, 2);
            let label = if years == 1 {
                "留党察看一年"
            } else {
                "留党察看二年"
            };
            let months = years * 12 + p.party_probation_extra_months;
            (label, Period::Months(months))
        }
        PartyType::Expulsion => ("开除党籍", Period::Permanent),
    };
    bar_reason(
        Bar {
            rule: rule_id::PARTY_SANCTION_PERIOD,
            label: format!("{label}处分（{decision_date}批准）"),
            en: "party sanction",
            start: decision_date,
            period,
            note: Note::default(),
        },
        name,
        as_of,
        p,
    )
}

/// A state sanction bars from its effective date.
fn state_sanction(
    name: &str,
    kind: StateType,
    effective_date: Date,
    as_of: Date,
    p: &RuleParams,
) -> Reason {
    let (label, period) = match kind {
        StateType::Warning => ("政务警告", Period::Months(p.state_warning_months)),
        StateType::Demerit => ("记过", Period::Months(p.state_demerit_months)),
        StateType::MajorDemerit => ("记大过", Period::Months(p.state_major_demerit_months)),
        StateType::Demotion => ("降级", Period::Months(p.state_demotion_months)),
        StateType::DismissalFromPost => ("撤职", Period::Months(p.state_dismissal_months)),
        StateType::ExpulsionFromService => ("开除", Period::Permanent),
    };
    bar_reason(
        Bar {
            rule: rule_id::STATE_SANCTION_PERIOD,
            label: format!("{label}政务处分（{effective_date}生效）"),
            en: "state sanction",
            start: effective_date,
            period,
            note: Note::default(),
        },
        name,
        as_of,
        p,
    )
}

/// 诫勉 bars; the lighter kinds are matters.
fn admonishment(
    name: &str,
    kind: AdmonishmentKind,
    date: Date,
    as_of: Date,
    p: &RuleParams,
) -> Reason {
    match kind {
        AdmonishmentKind::Admonition => bar_reason(
            Bar {
                rule: rule_id::ADMONITION_PERIOD,
                label: format!("诫勉（{date}）"),
                en: "admonition",
                start: date,
                period: Period::Months(p.admonition_months),
                note: Note::default(),
            },
            name,
            as_of,
            p,
        ),
        other => {
            let label = match other {
                AdmonishmentKind::TalkReminder => "谈话提醒 / talk reminder",
                AdmonishmentKind::Criticism => "批评教育 / criticism",
                _ => "责令检查 / ordered self-review",
            };
            matter(name, &format!("{date} {label}"))
        }
    }
}

/// 免职, 责令辞职 and 降职 bar (the first two noting their months without a post);
/// suspension and reassignment are matters.
fn org_handling(
    name: &str,
    kind: OrgHandlingKind,
    date: Date,
    as_of: Date,
    p: &RuleParams,
) -> Reason {
    let (label, months, no_post) = match kind {
        OrgHandlingKind::RemovalFromPost => ("免职", p.org_removal_months, true),
        OrgHandlingKind::OrderedResignation => ("责令辞职", p.org_ordered_resignation_months, true),
        OrgHandlingKind::DemotionInRank => ("降职", p.org_demotion_months, false),
        OrgHandlingKind::SuspensionForReview => {
            return matter(name, &format!("{date} 停职检查 / suspension for review"));
        }
        OrgHandlingKind::Reassignment => {
            return matter(name, &format!("{date} 调整职务 / reassignment"));
        }
    };
    let note = if no_post {
        let until = add_months(date, p.org_no_post_months);
        Note {
            zh: format!(
                "；其中{}个月内（{until}前）不安排领导职务",
                p.org_no_post_months
            ),
            en: format!("; no leadership post before {until}"),
        }
    } else {
        Note::default()
    };
    bar_reason(
        Bar {
            rule: rule_id::ORG_HANDLING_PERIOD,
            label: format!("组织处理：{label}（{date}）"),
            en: "organisational handling",
            start: date,
            period: Period::Months(months),
            note,
        },
        name,
        as_of,
        p,
    )
}

/// Concealment bars from the check date; under-reporting is a matter; a
/// consistent report gives no reason.
fn personal_matters(
    name: &str,
    result: PmResult,
    check_date: Date,
    as_of: Date,
    p: &RuleParams,
) -> Option<Reason> {
    match result {
        PmResult::Concealed => Some(bar_reason(
            Bar {
                rule: rule_id::CONCEALED_PERSONAL_MATTERS_PERIOD,
                label: format!("个人有关事项瞒报（{check_date}查核认定）"),
                en: "concealed personal matters",
                start: check_date,
                period: Period::Months(p.concealed_personal_matters_months),
                note: Note::default(),
            },
            name,
            as_of,
            p,
        )),
        PmResult::UnderReported => Some(matter(
            name,
            &format!("个人有关事项漏报（{check_date}查核认定） / under-reported personal matters"),
        )),
        PmResult::Consistent => None,
    }
}

/// An open clue still under disposal defers; any other clue is a matter.
fn clue(name: &str, disposal: Disposal, open: bool) -> Reason {
    let label = match disposal {
        Disposal::Registered => "受理登记",
        Disposal::TalkOrInquiry => "谈话函询",
        Disposal::PreliminaryCheck => "初步核实",
        Disposal::CaseOpened => "立案审查调查",
        Disposal::Shelved => "暂存待查",
        Disposal::Closed => "予以了结",
    };
    let pending = matches!(
        disposal,
        Disposal::Registered
            | Disposal::TalkOrInquiry
            | Disposal::PreliminaryCheck
            | Disposal::CaseOpened
    );
    if open && pending {
        Reason {
            rule: rule_id::OPEN_CLUE,
            verdict: Verdict::Defer,
            description: format!(
                "问题线索正在处置（{label}），尚未办结 / open clue under disposal"
            ),
            records: vec![name.to_owned()],
            barred_until: BarredUntil::None,
        }
    } else {
        let (status, en) = match (open, disposal) {
            (false, _) => ("，已办结", "concluded clue"),
            (true, Disposal::Shelved) => ("", "shelved clue"),
            (true, _) => ("", "clue closed by disposal"),
        };
        matter(name, &format!("问题线索（{label}{status}） / {en}"))
    }
}

/// A specific petition not closed defers; any other petition is a matter.
fn petition(name: &str, specific: bool, closed_or_rejected: bool) -> Reason {
    if specific && !closed_or_rejected {
        Reason {
            rule: rule_id::UNCLOSED_SPECIFIC_PETITION,
            verdict: Verdict::Defer,
            description: "线索具体的信访举报尚未办结 / specific petition not closed".to_owned(),
            records: vec![name.to_owned()],
            barred_until: BarredUntil::None,
        }
    } else {
        matter(name, "信访举报 / petition")
    }
}

/// A finding transferred to discipline and not rectified defers, one past its
/// deadline is an issue; a finding with neither is a matter.
/// An audit or inspection finding (DESIGN §6, §6a: the same rules), `label`
/// naming which in its reasons.
fn finding(
    name: &str,
    label: &str,
    transferred_to_discipline: bool,
    rectification_done: bool,
    deadline: Option<Date>,
    as_of: Date,
) -> Vec<Reason> {
    let mut out = Vec::new();
    if transferred_to_discipline && !rectification_done {
        out.push(Reason {
            rule: rule_id::FINDING_TRANSFERRED_TO_DISCIPLINE,
            verdict: Verdict::Defer,
            description: format!(
                "{label}：已移送纪检监察机关，整改尚未完成 \
                 / transferred to discipline, rectification not done"
            ),
            records: vec![name.to_owned()],
            barred_until: BarredUntil::None,
        });
    }
    // The deadline day itself is still within time; it has passed from the next day.
    if let Some(deadline) = deadline
        && deadline < as_of
        && !rectification_done
    {
        out.push(Reason {
            rule: rule_id::FINDING_PAST_RECTIFICATION_DEADLINE,
            verdict: Verdict::IssueNotBlocking,
            description: format!(
                "{label}：整改期限（{deadline}）已过，尚未整改完成 \
                 / rectification overdue since {deadline}"
            ),
            records: vec![name.to_owned()],
            barred_until: BarredUntil::None,
        });
    }
    if out.is_empty() {
        out.push(matter(name, label));
    }
    out
}

fn matter(name: &str, description: &str) -> Reason {
    Reason {
        rule: rule_id::MATTER_ON_RECORD,
        verdict: Verdict::IssueNotBlocking,
        description: format!("有问题记录：{description}"),
        records: vec![name.to_owned()],
        barred_until: BarredUntil::None,
    }
}

#[cfg(test)]
mod tests;
