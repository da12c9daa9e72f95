//! Integrity-opinion rules (DESIGN §6): a draft verdict with its reasons, cited records and promotion bar, as pure functions.

use figment::providers::Format;
use serde::{Deserialize, Serialize};
use time::{Date, Month};

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
            | Fact::Petition { name, .. } => name,
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
            | Fact::Petition { active, .. } => *active,
        }
    }

    /// A *matter on record* (DESIGN §6): any active sanction, admonishment, clue, organisational
    /// handling, audit finding or petition, or a personal-matters check that was not consistent.
    pub fn is_matter(&self) -> bool {
        self.is_active()
            && match self {
                Fact::Sanction { .. }
                | Fact::Admonishment { .. }
                | Fact::Clue { .. }
                | Fact::OrgHandling { .. }
                | Fact::AuditFinding { .. }
                | Fact::Petition { .. } => true,
                Fact::PersonalMatters { result, .. } => *result != PmResult::Consistent,
                Fact::Evaluation { .. } | Fact::AuditEngagement { .. } => false,
            }
    }
}

/// Every period of DESIGN §6, in months. Missing keys in the TOML keep these defaults; unknown
/// keys are refused so that a misspelt key cannot silently leave a default in force.
///
/// Sources (figures checked against the cited texts where an article is given; see
/// `data/rules.toml` for the same notes next to each figure):
/// - Party sanctions: 《中国共产党纪律处分条例》(2023年修订). 第十条: 警告一年内、严重警告一年半内
///   不得在党内提拔职务或者进一步使用; the CCDI reading of 第十条 counts the period from the day
///   the sanction is approved (批准之日), hence the decision date. 第十一条: 撤销党内职务, 二年内
///   不得担任相当或者高于原任职务的职务. 留党察看 (一年或二年, 最长二年): 恢复党员权利后二年内
///   不得担任相当或者高于原任职务的职务 — the clause is quoted from the 2023 text; its number
///   (第十二条) follows the order of 第八至十一条 and was not seen printed. 开除党籍: the 条例 sets no
///   end to the bar (its five years concern re-admission), so it is permanent.
/// - State sanctions: 《中华人民共和国公职人员政务处分法》第七条 (kinds) and 第八条 (警告六个月,
///   记过十二个月, 记大过十八个月, 降级、撤职二十四个月; 政务处分期自政务处分决定生效之日起计算,
///   hence the effective date). 开除 has no period in 第八条: permanent.
/// - 诫勉 six months, 免职/责令辞职 (一年内不安排领导职务, 二年内不得担任高于原任职务层次的职务),
///   降职 two years: figures of the DESIGN table, matching the usual practice under
///   《推进领导干部能上能下规定》(2022) and 《中国共产党组织处理规定（试行）》(2021); no article
///   number could be confirmed, so none is cited.
/// - 瞒报 twelve months: DESIGN figure. What counts as 隐瞒不报 vs 漏报 is set by
///   《领导干部个人有关事项报告查核结果处理办法》(2017) 第三条、第四条; the twelve-month bar could
///   not be pinned to an article. (《领导干部报告个人有关事项规定》(2017) 第十八条 concerns the
///   armed forces and is not the source.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleParams {
    /// 党纪警告, from the decision date.
    pub party_warning_months: u32,
    /// 严重警告.
    pub party_serious_warning_months: u32,
    /// 撤销党内职务.
    pub party_removal_from_post_months: u32,
    /// 留党察看: the bar is the probation (1 or 2 years) plus these months.
    pub party_probation_extra_months: u32,
    /// 政务警告, from the effective date.
    pub state_warning_months: u32,
    /// 记过.
    pub state_demerit_months: u32,
    /// 记大过.
    pub state_major_demerit_months: u32,
    /// 降级.
    pub state_demotion_months: u32,
    /// 撤职.
    pub state_dismissal_months: u32,
    /// 诫勉, from its date.
    pub admonition_months: u32,
    /// 免职, from its date.
    pub org_removal_months: u32,
    /// 责令辞职.
    pub org_ordered_resignation_months: u32,
    /// 免职/责令辞职: months without any leadership post, reported in the reason text only.
    pub org_no_post_months: u32,
    /// 降职.
    pub org_demotion_months: u32,
    /// 个人有关事项瞒报, from the check date.
    pub concealed_personal_matters_months: u32,
    /// Whether a bar that starts after the as-of date blocks (NOT_AGREE). See [`draft`].
    pub bar_not_yet_started_blocks: bool,
}

impl Default for RuleParams {
    fn default() -> Self {
        RuleParams {
            party_warning_months: 12,
            party_serious_warning_months: 18,
            party_removal_from_post_months: 24,
            party_probation_extra_months: 24,
            state_warning_months: 6,
            state_demerit_months: 12,
            state_major_demerit_months: 18,
            state_demotion_months: 24,
            state_dismissal_months: 24,
            admonition_months: 6,
            org_removal_months: 24,
            org_ordered_resignation_months: 24,
            org_no_post_months: 12,
            org_demotion_months: 24,
            concealed_personal_matters_months: 12,
            bar_not_yet_started_blocks: true,
        }
    }
}

impl RuleParams {
    /// Parses a rules file (format of `data/rules.toml`); absent keys keep their defaults.
    /// Fails on TOML syntax errors, unknown keys and values of the wrong type.
    pub fn from_toml(text: &str) -> anyhow::Result<RuleParams> {
        Ok(figment::Figment::from(figment::providers::Toml::string(text)).extract()?)
    }
}

/// `d` plus `n` calendar months, the day clamped to the end of the target month
/// (2024-02-29 + 12 = 2025-02-28; 2025-08-31 + 6 = 2026-02-28). Saturates at [`Date::MAX`].
pub fn add_months(d: Date, n: u32) -> Date {
    let index = i64::from(d.year()) * 12 + i64::from(u8::from(d.month()) - 1) + i64::from(n);
    let Ok(year) = i32::try_from(index.div_euclid(12)) else {
        return Date::MAX;
    };
    // rem_euclid(12) is in 0..12, so the month number is in 1..=12.
    let month = Month::try_from(index.rem_euclid(12) as u8 + 1).unwrap_or(Month::December);
    let day = d.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MAX)
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

/// How long a bar lasts.
#[derive(Clone, Copy)]
enum Period {
    Months(u32),
    Permanent,
}

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
        } => match (track, party, state) {
            (Track::Party, Some(kind), _) => {
                let (label, period) = match kind {
                    PartyType::Warning => ("党纪警告", Period::Months(p.party_warning_months)),
                    PartyType::SeriousWarning => {
                        ("严重警告", Period::Months(p.party_serious_warning_months))
                    }
                    PartyType::RemovalFromPartyPost => (
                        "撤销党内职务",
                        Period::Months(p.party_removal_from_post_months),
                    ),
                    PartyType::Probation => {
                        // The 条例 allows only one or two years; validation rejects anything
                        // else, so clamping only guards against a mapping slip.
                        let years = (*probation_years).clamp(1, 2);
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
                out.push(bar_reason(
                    Bar {
                        rule: rule_id::PARTY_SANCTION_PERIOD,
                        label: format!("{label}处分（{decision_date}批准）"),
                        en: "party sanction",
                        start: *decision_date,
                        period,
                        note: Note::default(),
                    },
                    name,
                    as_of,
                    p,
                ));
            }
            (Track::State, _, Some(kind)) => {
                let (label, period) = match kind {
                    StateType::Warning => ("政务警告", Period::Months(p.state_warning_months)),
                    StateType::Demerit => ("记过", Period::Months(p.state_demerit_months)),
                    StateType::MajorDemerit => {
                        ("记大过", Period::Months(p.state_major_demerit_months))
                    }
                    StateType::Demotion => ("降级", Period::Months(p.state_demotion_months)),
                    StateType::DismissalFromPost => {
                        ("撤职", Period::Months(p.state_dismissal_months))
                    }
                    StateType::ExpulsionFromService => ("开除", Period::Permanent),
                };
                out.push(bar_reason(
                    Bar {
                        rule: rule_id::STATE_SANCTION_PERIOD,
                        label: format!("{label}政务处分（{effective_date}生效）"),
                        en: "state sanction",
                        start: *effective_date,
                        period,
                        note: Note::default(),
                    },
                    name,
                    as_of,
                    p,
                ));
            }
            // Input validation rejects a sanction without its type; should one slip through,
            // it is still a matter, but no period can be computed for it.
            _ => out.push(matter(
                name,
                "处分种类不明，无法计算影响期 / sanction of unknown type",
            )),
        },
        Fact::Admonishment { kind, date, .. } => match kind {
            AdmonishmentKind::Admonition => out.push(bar_reason(
                Bar {
                    rule: rule_id::ADMONITION_PERIOD,
                    label: format!("诫勉（{date}）"),
                    en: "admonition",
                    start: *date,
                    period: Period::Months(p.admonition_months),
                    note: Note::default(),
                },
                name,
                as_of,
                p,
            )),
            other => {
                let label = match other {
                    AdmonishmentKind::TalkReminder => "谈话提醒 / talk reminder",
                    AdmonishmentKind::Criticism => "批评教育 / criticism",
                    _ => "责令检查 / ordered self-review",
                };
                out.push(matter(name, &format!("{date} {label}")));
            }
        },
        Fact::OrgHandling { kind, date, .. } => {
            let (label, months, no_post) = match kind {
                OrgHandlingKind::RemovalFromPost => ("免职", p.org_removal_months, true),
                OrgHandlingKind::OrderedResignation => {
                    ("责令辞职", p.org_ordered_resignation_months, true)
                }
                OrgHandlingKind::DemotionInRank => ("降职", p.org_demotion_months, false),
                OrgHandlingKind::SuspensionForReview => {
                    out.push(matter(
                        name,
                        &format!("{date} 停职检查 / suspension for review"),
                    ));
                    return;
                }
                OrgHandlingKind::Reassignment => {
                    out.push(matter(name, &format!("{date} 调整职务 / reassignment")));
                    return;
                }
            };
            let note = if no_post {
                let until = add_months(*date, p.org_no_post_months);
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
            out.push(bar_reason(
                Bar {
                    rule: rule_id::ORG_HANDLING_PERIOD,
                    label: format!("组织处理：{label}（{date}）"),
                    en: "organisational handling",
                    start: *date,
                    period: Period::Months(months),
                    note,
                },
                name,
                as_of,
                p,
            ));
        }
        Fact::PersonalMatters {
            result, check_date, ..
        } => match result {
            PmResult::Concealed => out.push(bar_reason(
                Bar {
                    rule: rule_id::CONCEALED_PERSONAL_MATTERS_PERIOD,
                    label: format!("个人有关事项瞒报（{check_date}查核认定）"),
                    en: "concealed personal matters",
                    start: *check_date,
                    period: Period::Months(p.concealed_personal_matters_months),
                    note: Note::default(),
                },
                name,
                as_of,
                p,
            )),
            PmResult::UnderReported => out.push(matter(
                name,
                &format!(
                    "个人有关事项漏报（{check_date}查核认定） / under-reported personal matters"
                ),
            )),
            PmResult::Consistent => {}
        },
        Fact::Clue { disposal, open, .. } => {
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
            if *open && pending {
                out.push(Reason {
                    rule: rule_id::OPEN_CLUE,
                    verdict: Verdict::Defer,
                    description: format!(
                        "问题线索正在处置（{label}），尚未办结 / open clue under disposal"
                    ),
                    records: vec![name.to_owned()],
                    barred_until: BarredUntil::None,
                });
            } else {
                let (status, en) = match (open, disposal) {
                    (false, _) => ("，已办结", "concluded clue"),
                    (true, Disposal::Shelved) => ("", "shelved clue"),
                    (true, _) => ("", "clue closed by disposal"),
                };
                out.push(matter(name, &format!("问题线索（{label}{status}） / {en}")));
            }
        }
        Fact::Petition {
            specific,
            closed_or_rejected,
            ..
        } => {
            if *specific && !*closed_or_rejected {
                out.push(Reason {
                    rule: rule_id::UNCLOSED_SPECIFIC_PETITION,
                    verdict: Verdict::Defer,
                    description: "线索具体的信访举报尚未办结 / specific petition not closed"
                        .to_owned(),
                    records: vec![name.to_owned()],
                    barred_until: BarredUntil::None,
                });
            } else {
                out.push(matter(name, "信访举报 / petition"));
            }
        }
        Fact::AuditFinding {
            transferred_to_discipline,
            rectification_done,
            deadline,
            ..
        } => {
            let mut specific_row = false;
            if *transferred_to_discipline && !*rectification_done {
                specific_row = true;
                out.push(Reason {
                    rule: rule_id::FINDING_TRANSFERRED_TO_DISCIPLINE,
                    verdict: Verdict::Defer,
                    description: "审计发现问题已移送纪检监察机关，整改尚未完成 \
                                  / finding transferred to discipline, rectification not done"
                        .to_owned(),
                    records: vec![name.to_owned()],
                    barred_until: BarredUntil::None,
                });
            }
            // The deadline day itself is still within time; it has passed from the next day.
            if let Some(deadline) = deadline
                && *deadline < as_of
                && !*rectification_done
            {
                specific_row = true;
                out.push(Reason {
                    rule: rule_id::FINDING_PAST_RECTIFICATION_DEADLINE,
                    verdict: Verdict::IssueNotBlocking,
                    description: format!(
                        "审计发现问题整改期限（{deadline}）已过，尚未整改完成 \
                         / rectification overdue since {deadline}"
                    ),
                    records: vec![name.to_owned()],
                    barred_until: BarredUntil::None,
                });
            }
            if !specific_row {
                out.push(matter(name, "审计发现问题 / audit finding"));
            }
        }
        Fact::Evaluation { .. } | Fact::AuditEngagement { .. } => {}
    }
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

/// One period rule applied to one record.
struct Bar {
    rule: &'static str,
    /// zh-CN name of the record, with its date.
    label: String,
    /// Short English gloss.
    en: &'static str,
    start: Date,
    period: Period,
    /// Appended to the description of a bar that has not ended.
    note: Note,
}

#[derive(Default)]
struct Note {
    zh: String,
    en: String,
}

fn bar_reason(bar: Bar, name: &str, as_of: Date, p: &RuleParams) -> Reason {
    let Bar {
        rule,
        label,
        en,
        start,
        period,
        note,
    } = bar;
    let Note {
        zh: note_zh,
        en: note_en,
    } = note;
    let not_started = start > as_of;
    let (verdict, barred_until, description) = match period {
        Period::Permanent => {
            let verdict = if not_started && !p.bar_not_yet_started_blocks {
                Verdict::IssueNotBlocking
            } else {
                Verdict::NotAgree
            };
            let when = if not_started {
                format!("（自{start}起，晚于出具意见日期{as_of}）")
            } else {
                String::new()
            };
            (
                verdict,
                BarredUntil::Permanent,
                format!("{label}：不得提拔或者进一步使用，无期限{when} / {en}: permanent bar"),
            )
        }
        // A zero-month period means the operator switched the bar off: a matter, no bar.
        Period::Months(0) => (
            Verdict::IssueNotBlocking,
            BarredUntil::None,
            format!("{label}：未设影响期 / {en}: no period configured"),
        ),
        Period::Months(n) => {
            let end = add_months(start, n);
            if end <= as_of {
                (
                    Verdict::IssueNotBlocking,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，已于{end}届满，仍属有问题记录 \
                         / {en}: {n}-month bar ended {end}"
                    ),
                )
            } else if not_started {
                let verdict = if p.bar_not_yet_started_blocks {
                    Verdict::NotAgree
                } else {
                    Verdict::IssueNotBlocking
                };
                (
                    verdict,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，自{start}起算（晚于出具意见日期{as_of}），\
                         {end}起不再影响{note_zh} / {en}: {n}-month bar from {start} \
                         (after the as-of date), free from {end}{note_en}"
                    ),
                )
            } else {
                (
                    Verdict::NotAgree,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，{end}前不得提拔或者进一步使用{note_zh} \
                         / {en}: {n}-month bar, free from {end}{note_en}"
                    ),
                )
            }
        }
    };
    Reason {
        rule,
        verdict,
        description,
        records: vec![name.to_owned()],
        barred_until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    use BarredUntil as B;
    use Verdict::*;

    fn party(name: &str, kind: PartyType, probation_years: u32, decision: Date) -> Fact {
        Fact::Sanction {
            name: name.into(),
            active: true,
            track: Track::Party,
            party: Some(kind),
            state: None,
            probation_years,
            decision_date: decision,
            // Deliberately later than the decision, so a rule reading the wrong date shows.
            effective_date: add_months(decision, 1),
        }
    }

    fn state(name: &str, kind: StateType, decision: Date, effective: Date) -> Fact {
        Fact::Sanction {
            name: name.into(),
            active: true,
            track: Track::State,
            party: None,
            state: Some(kind),
            probation_years: 0,
            decision_date: decision,
            effective_date: effective,
        }
    }

    fn admon(name: &str, kind: AdmonishmentKind, date: Date) -> Fact {
        Fact::Admonishment {
            name: name.into(),
            active: true,
            kind,
            date,
        }
    }

    fn org(name: &str, kind: OrgHandlingKind, date: Date) -> Fact {
        Fact::OrgHandling {
            name: name.into(),
            active: true,
            kind,
            date,
        }
    }

    fn pm(name: &str, result: PmResult, check_date: Date) -> Fact {
        Fact::PersonalMatters {
            name: name.into(),
            active: true,
            result,
            check_date,
        }
    }

    fn clue(name: &str, disposal: Disposal, open: bool) -> Fact {
        Fact::Clue {
            name: name.into(),
            active: true,
            disposal,
            open,
        }
    }

    fn petition(name: &str, specific: bool, closed_or_rejected: bool) -> Fact {
        Fact::Petition {
            name: name.into(),
            active: true,
            specific,
            closed_or_rejected,
        }
    }

    fn finding(name: &str, transferred: bool, done: bool, deadline: Option<Date>) -> Fact {
        Fact::AuditFinding {
            name: name.into(),
            active: true,
            transferred_to_discipline: transferred,
            rectification_done: done,
            deadline,
        }
    }

    fn retracted(mut f: Fact) -> Fact {
        match &mut f {
            Fact::Sanction { active, .. }
            | Fact::Admonishment { active, .. }
            | Fact::Clue { active, .. }
            | Fact::OrgHandling { active, .. }
            | Fact::PersonalMatters { active, .. }
            | Fact::Evaluation { active, .. }
            | Fact::AuditEngagement { active, .. }
            | Fact::AuditFinding { active, .. }
            | Fact::Petition { active, .. } => *active = false,
        }
        f
    }

    fn evaluation(name: &str) -> Fact {
        Fact::Evaluation {
            name: name.into(),
            active: true,
        }
    }

    fn engagement(name: &str) -> Fact {
        Fact::AuditEngagement {
            name: name.into(),
            active: true,
        }
    }

    struct Case {
        title: &'static str,
        facts: Vec<Fact>,
        as_of: Date,
        verdict: Verdict,
        barred_until: BarredUntil,
        /// (rule, verdict, cited record) in the order the draft must list them.
        reasons: Vec<(&'static str, Verdict, &'static str)>,
    }

    use rule_id::*;

    fn cases() -> Vec<Case> {
        use AdmonishmentKind as A;
        use OrgHandlingKind as O;
        use PartyType as P;
        use StateType as S;
        vec![
            // --- party sanctions: from the decision date ---
            Case {
                title: "party warning: decision day is barred",
                facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
                as_of: date!(2025 - 03 - 10),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 03 - 10)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "party warning: last barred day",
                facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
                as_of: date!(2026 - 03 - 09),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 03 - 10)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "party warning: first free day, still a matter",
                facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
                as_of: date!(2026 - 03 - 10),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            Case {
                title: "party serious warning: 2024-08-31 + 18 clamps to 2026-02-28, last day",
                facts: vec![party("s1", P::SeriousWarning, 0, date!(2024 - 08 - 31))],
                as_of: date!(2026 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 02 - 28)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "party serious warning: first free day 2026-02-28",
                facts: vec![party("s1", P::SeriousWarning, 0, date!(2024 - 08 - 31))],
                as_of: date!(2026 - 02 - 28),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            Case {
                title: "removal from party post: leap day + 24 = 2026-02-28, last day",
                facts: vec![party(
                    "s1",
                    P::RemovalFromPartyPost,
                    0,
                    date!(2024 - 02 - 29),
                )],
                as_of: date!(2026 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 02 - 28)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "removal from party post: first free day",
                facts: vec![party(
                    "s1",
                    P::RemovalFromPartyPost,
                    0,
                    date!(2024 - 02 - 29),
                )],
                as_of: date!(2026 - 02 - 28),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            Case {
                title: "probation 1 year = 36 months: last barred day",
                facts: vec![party("s1", P::Probation, 1, date!(2023 - 05 - 15))],
                as_of: date!(2026 - 05 - 14),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 05 - 15)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "probation 1 year: first free day",
                facts: vec![party("s1", P::Probation, 1, date!(2023 - 05 - 15))],
                as_of: date!(2026 - 05 - 15),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            Case {
                title: "probation 2 years = 48 months: still barred when 1 year would be free",
                facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
                as_of: date!(2026 - 05 - 15),
                verdict: NotAgree,
                barred_until: B::Date(date!(2027 - 05 - 15)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "probation 2 years: last barred day",
                facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
                as_of: date!(2027 - 05 - 14),
                verdict: NotAgree,
                barred_until: B::Date(date!(2027 - 05 - 15)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "probation 2 years: first free day",
                facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
                as_of: date!(2027 - 05 - 15),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            Case {
                title: "party expulsion: permanent",
                facts: vec![party("s1", P::Expulsion, 0, date!(2001 - 01 - 01))],
                as_of: date!(2040 - 01 - 01),
                verdict: NotAgree,
                barred_until: B::Permanent,
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "party period runs from the decision date, not the later effective date",
                facts: vec![Fact::Sanction {
                    name: "s1".into(),
                    active: true,
                    track: Track::Party,
                    party: Some(P::Warning),
                    state: None,
                    probation_years: 0,
                    decision_date: date!(2025 - 01 - 10),
                    effective_date: date!(2025 - 02 - 10),
                }],
                as_of: date!(2026 - 01 - 10),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
            },
            // --- state sanctions: from the effective date ---
            Case {
                title: "state warning: last barred day counted from the effective date",
                facts: vec![state(
                    "s2",
                    S::Warning,
                    date!(2025 - 12 - 20),
                    date!(2026 - 01 - 05),
                )],
                as_of: date!(2026 - 07 - 04),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 07 - 05)),
                reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
            },
            Case {
                title: "state warning: first free day (decision + 6 would be 2026-06-20)",
                facts: vec![state(
                    "s2",
                    S::Warning,
                    date!(2025 - 12 - 20),
                    date!(2026 - 01 - 05),
                )],
                as_of: date!(2026 - 07 - 05),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
            },
            Case {
                title: "state demerit: 12 months from 2025-08-31, last day",
                facts: vec![state(
                    "s2",
                    S::Demerit,
                    date!(2025 - 08 - 31),
                    date!(2025 - 08 - 31),
                )],
                as_of: date!(2026 - 08 - 30),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 08 - 31)),
                reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
            },
            Case {
                title: "state major demerit: leap day + 18 = 2025-08-29, first free day",
                facts: vec![state(
                    "s2",
                    S::MajorDemerit,
                    date!(2024 - 02 - 29),
                    date!(2024 - 02 - 29),
                )],
                as_of: date!(2025 - 08 - 29),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
            },
            Case {
                title: "state demotion: leap day + 24 = 2026-02-28, last day",
                facts: vec![state(
                    "s2",
                    S::Demotion,
                    date!(2024 - 02 - 29),
                    date!(2024 - 02 - 29),
                )],
                as_of: date!(2026 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 02 - 28)),
                reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
            },
            Case {
                title: "state dismissal from post: 24 months, first free day",
                facts: vec![state(
                    "s2",
                    S::DismissalFromPost,
                    date!(2023 - 11 - 30),
                    date!(2023 - 11 - 30),
                )],
                as_of: date!(2025 - 11 - 30),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
            },
            Case {
                title: "state expulsion from service: permanent",
                facts: vec![state(
                    "s2",
                    S::ExpulsionFromService,
                    date!(2010 - 06 - 01),
                    date!(2010 - 06 - 01),
                )],
                as_of: date!(2026 - 06 - 01),
                verdict: NotAgree,
                barred_until: B::Permanent,
                reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
            },
            // --- admonishments ---
            Case {
                title: "admonition: 2025-08-31 + 6 = 2026-02-28, last day",
                facts: vec![admon("a1", A::Admonition, date!(2025 - 08 - 31))],
                as_of: date!(2026 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 02 - 28)),
                reasons: vec![(ADMONITION_PERIOD, NotAgree, "a1")],
            },
            Case {
                title: "admonition: first free day",
                facts: vec![admon("a1", A::Admonition, date!(2025 - 08 - 31))],
                as_of: date!(2026 - 02 - 28),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(ADMONITION_PERIOD, IssueNotBlocking, "a1")],
            },
            Case {
                title: "talk reminder, criticism, ordered self-review: matters, no bar",
                facts: vec![
                    admon("a1", A::TalkReminder, date!(2026 - 01 - 01)),
                    admon("a2", A::Criticism, date!(2026 - 01 - 01)),
                    admon("a3", A::OrderedSelfReview, date!(2026 - 01 - 01)),
                ],
                as_of: date!(2026 - 01 - 02),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![
                    (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "a2"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "a3"),
                ],
            },
            // --- organisational handling ---
            Case {
                title: "removal from post: leap day + 24, last day",
                facts: vec![org("o1", O::RemovalFromPost, date!(2024 - 02 - 29))],
                as_of: date!(2026 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 02 - 28)),
                reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
            },
            Case {
                title: "ordered resignation: 24 months, first free day",
                facts: vec![org("o1", O::OrderedResignation, date!(2024 - 03 - 31))],
                as_of: date!(2026 - 03 - 31),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(ORG_HANDLING_PERIOD, IssueNotBlocking, "o1")],
            },
            Case {
                title: "ordered resignation: last barred day",
                facts: vec![org("o1", O::OrderedResignation, date!(2024 - 03 - 31))],
                as_of: date!(2026 - 03 - 30),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 03 - 31)),
                reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
            },
            Case {
                title: "demotion in rank: 2025-01-31 + 24, last day",
                facts: vec![org("o1", O::DemotionInRank, date!(2025 - 01 - 31))],
                as_of: date!(2027 - 01 - 30),
                verdict: NotAgree,
                barred_until: B::Date(date!(2027 - 01 - 31)),
                reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
            },
            Case {
                title: "suspension for review and reassignment: matters, no period",
                facts: vec![
                    org("o1", O::SuspensionForReview, date!(2026 - 01 - 05)),
                    org("o2", O::Reassignment, date!(2026 - 01 - 05)),
                ],
                as_of: date!(2026 - 01 - 06),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![
                    (MATTER_ON_RECORD, IssueNotBlocking, "o1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "o2"),
                ],
            },
            // --- personal matters ---
            Case {
                title: "concealed: leap day + 12 = 2025-02-28, last day",
                facts: vec![pm("p1", PmResult::Concealed, date!(2024 - 02 - 29))],
                as_of: date!(2025 - 02 - 27),
                verdict: NotAgree,
                barred_until: B::Date(date!(2025 - 02 - 28)),
                reasons: vec![(CONCEALED_PERSONAL_MATTERS_PERIOD, NotAgree, "p1")],
            },
            Case {
                title: "concealed: first free day",
                facts: vec![pm("p1", PmResult::Concealed, date!(2024 - 02 - 29))],
                as_of: date!(2025 - 02 - 28),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(CONCEALED_PERSONAL_MATTERS_PERIOD, IssueNotBlocking, "p1")],
            },
            Case {
                title: "under-reported is a matter; consistent is not",
                facts: vec![
                    pm("p1", PmResult::UnderReported, date!(2025 - 06 - 01)),
                    pm("p2", PmResult::Consistent, date!(2025 - 06 - 01)),
                ],
                as_of: date!(2025 - 06 - 02),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "p1")],
            },
            Case {
                title: "consistent check, evaluation and engagement: no matter at all",
                facts: vec![
                    pm("p2", PmResult::Consistent, date!(2025 - 06 - 01)),
                    evaluation("e1"),
                    engagement("g1"),
                ],
                as_of: date!(2025 - 06 - 02),
                verdict: NoIssue,
                barred_until: B::None,
                reasons: vec![],
            },
            // --- clues ---
            Case {
                title: "open clue, registered: defer",
                facts: vec![clue("c1", Disposal::Registered, true)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(OPEN_CLUE, Defer, "c1")],
            },
            Case {
                title: "open clue, talk or inquiry: defer",
                facts: vec![clue("c1", Disposal::TalkOrInquiry, true)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(OPEN_CLUE, Defer, "c1")],
            },
            Case {
                title: "open clue, preliminary check: defer",
                facts: vec![clue("c1", Disposal::PreliminaryCheck, true)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(OPEN_CLUE, Defer, "c1")],
            },
            Case {
                title: "open clue, case opened: defer",
                facts: vec![clue("c1", Disposal::CaseOpened, true)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(OPEN_CLUE, Defer, "c1")],
            },
            Case {
                title: "shelved, concluded and closed clues: matters that do not defer",
                facts: vec![
                    clue("c1", Disposal::Shelved, true),
                    clue("c2", Disposal::CaseOpened, false),
                    clue("c3", Disposal::Closed, true),
                ],
                as_of: date!(2026 - 01 - 01),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![
                    (MATTER_ON_RECORD, IssueNotBlocking, "c1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "c2"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "c3"),
                ],
            },
            // --- petitions ---
            Case {
                title: "specific petition not closed: defer",
                facts: vec![petition("t1", true, false)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(UNCLOSED_SPECIFIC_PETITION, Defer, "t1")],
            },
            Case {
                title: "closed or rejected specific petition and open unspecific one: matters",
                facts: vec![petition("t1", true, true), petition("t2", false, false)],
                as_of: date!(2026 - 01 - 01),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![
                    (MATTER_ON_RECORD, IssueNotBlocking, "t1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "t2"),
                ],
            },
            // --- audit findings ---
            Case {
                title: "finding transferred to discipline, not done: defer",
                facts: vec![finding("f1", true, false, None)],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![(FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "f1")],
            },
            Case {
                title: "finding transferred and rectified: a matter only",
                facts: vec![finding("f1", true, true, Some(date!(2025 - 06 - 30)))],
                as_of: date!(2026 - 01 - 01),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "f1")],
            },
            Case {
                title: "finding past its rectification deadline: flagged",
                facts: vec![finding("f1", false, false, Some(date!(2025 - 12 - 31)))],
                as_of: date!(2026 - 01 - 01),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1")],
            },
            Case {
                title: "finding on its deadline day is not yet overdue",
                facts: vec![finding("f1", false, false, Some(date!(2026 - 01 - 01)))],
                as_of: date!(2026 - 01 - 01),
                verdict: IssueNotBlocking,
                barred_until: B::None,
                reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "f1")],
            },
            Case {
                title: "finding transferred and overdue: both rows listed, defer wins",
                facts: vec![finding("f1", true, false, Some(date!(2025 - 12 - 31)))],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![
                    (FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "f1"),
                    (FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1"),
                ],
            },
            // --- combinations ---
            Case {
                title: "several bars: the latest end wins",
                facts: vec![
                    party("s1", P::Warning, 0, date!(2025 - 03 - 10)),
                    state(
                        "s2",
                        S::Demerit,
                        date!(2025 - 08 - 31),
                        date!(2025 - 08 - 31),
                    ),
                    admon("a1", A::Admonition, date!(2025 - 12 - 01)),
                ],
                as_of: date!(2026 - 01 - 15),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 08 - 31)),
                reasons: vec![
                    (PARTY_SANCTION_PERIOD, NotAgree, "s1"),
                    (STATE_SANCTION_PERIOD, NotAgree, "s2"),
                    (ADMONITION_PERIOD, NotAgree, "a1"),
                ],
            },
            Case {
                title: "permanent beats any date",
                facts: vec![
                    party("s1", P::Warning, 0, date!(2025 - 03 - 10)),
                    state(
                        "s2",
                        S::ExpulsionFromService,
                        date!(2025 - 04 - 01),
                        date!(2025 - 04 - 01),
                    ),
                ],
                as_of: date!(2025 - 06 - 01),
                verdict: NotAgree,
                barred_until: B::Permanent,
                reasons: vec![
                    (PARTY_SANCTION_PERIOD, NotAgree, "s1"),
                    (STATE_SANCTION_PERIOD, NotAgree, "s2"),
                ],
            },
            Case {
                title: "an ended bar does not set barred_until; the running one does",
                facts: vec![
                    party("s1", P::Warning, 0, date!(2023 - 01 - 10)),
                    admon("a1", A::Admonition, date!(2025 - 11 - 30)),
                ],
                as_of: date!(2026 - 01 - 01),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 05 - 30)),
                reasons: vec![
                    (ADMONITION_PERIOD, NotAgree, "a1"),
                    (PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1"),
                ],
            },
            Case {
                title: "precedence: not agree > defer > issue, every row listed, non-matters silent",
                facts: vec![
                    finding("f1", false, false, Some(date!(2025 - 01 - 01))),
                    evaluation("e1"),
                    clue("c1", Disposal::TalkOrInquiry, true),
                    petition("t1", true, false),
                    pm("p1", PmResult::Concealed, date!(2025 - 10 - 01)),
                    admon("a1", A::TalkReminder, date!(2025 - 01 - 01)),
                ],
                as_of: date!(2026 - 01 - 01),
                verdict: NotAgree,
                barred_until: B::Date(date!(2026 - 10 - 01)),
                reasons: vec![
                    (CONCEALED_PERSONAL_MATTERS_PERIOD, NotAgree, "p1"),
                    (OPEN_CLUE, Defer, "c1"),
                    (UNCLOSED_SPECIFIC_PETITION, Defer, "t1"),
                    (FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
                ],
            },
            Case {
                title: "precedence: defer > issue not blocking",
                facts: vec![
                    admon("a1", A::Criticism, date!(2025 - 01 - 01)),
                    clue("c1", Disposal::PreliminaryCheck, true),
                ],
                as_of: date!(2026 - 01 - 01),
                verdict: Defer,
                barred_until: B::None,
                reasons: vec![
                    (OPEN_CLUE, Defer, "c1"),
                    (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
                ],
            },
            Case {
                title: "retracted records count for nothing",
                facts: vec![
                    retracted(party("s1", P::Expulsion, 0, date!(2020 - 01 - 01))),
                    retracted(clue("c1", Disposal::CaseOpened, true)),
                    retracted(pm("p1", PmResult::Concealed, date!(2025 - 10 - 01))),
                    retracted(finding("f1", true, false, None)),
                    retracted(petition("t1", true, false)),
                    retracted(admon("a1", A::TalkReminder, date!(2025 - 01 - 01))),
                ],
                as_of: date!(2026 - 01 - 01),
                verdict: NoIssue,
                barred_until: B::None,
                reasons: vec![],
            },
            Case {
                title: "bar starting after the as-of date blocks by default",
                facts: vec![party("s1", P::Warning, 0, date!(2026 - 06 - 01))],
                as_of: date!(2026 - 05 - 01),
                verdict: NotAgree,
                barred_until: B::Date(date!(2027 - 06 - 01)),
                reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
            },
            Case {
                title: "no records at all",
                facts: vec![],
                as_of: date!(2026 - 01 - 01),
                verdict: NoIssue,
                barred_until: B::None,
                reasons: vec![],
            },
        ]
    }

    #[test]
    fn rules_table() {
        let params = RuleParams::default();
        let cases = cases();
        assert!(cases.len() >= 30);
        for case in cases {
            let d = draft(&case.facts, case.as_of, &params);
            let got: Vec<(&str, Verdict, &str)> = d
                .reasons
                .iter()
                .map(|r| (r.rule, r.verdict, r.records[0].as_str()))
                .collect();
            assert_eq!(d.verdict, case.verdict, "{}: verdict", case.title);
            assert_eq!(d.barred_until, case.barred_until, "{}: until", case.title);
            assert_eq!(got, case.reasons, "{}: reasons", case.title);
            for r in &d.reasons {
                assert_eq!(r.records.len(), 1, "{}: one record per reason", case.title);
                assert!(!r.description.is_empty());
            }
        }
    }

    #[test]
    fn rules_add_months_clamps_to_month_end() {
        let cases = [
            (date!(2024 - 02 - 29), 12, date!(2025 - 02 - 28)),
            (date!(2025 - 08 - 31), 6, date!(2026 - 02 - 28)),
            (date!(2024 - 02 - 29), 48, date!(2028 - 02 - 29)),
            (date!(2024 - 01 - 31), 1, date!(2024 - 02 - 29)),
            (date!(2023 - 01 - 31), 1, date!(2023 - 02 - 28)),
            (date!(2025 - 03 - 31), 1, date!(2025 - 04 - 30)),
            (date!(2025 - 12 - 15), 1, date!(2026 - 01 - 15)),
            (date!(2025 - 05 - 15), 0, date!(2025 - 05 - 15)),
            (date!(2023 - 05 - 15), 36, date!(2026 - 05 - 15)),
        ];
        for (start, n, end) in cases {
            assert_eq!(add_months(start, n), end, "{start} + {n}");
        }
        assert_eq!(add_months(date!(9999 - 06 - 01), 12), Date::MAX);
    }

    #[test]
    fn rules_removal_reports_months_without_post() {
        let d = draft(
            &[org(
                "o1",
                OrgHandlingKind::RemovalFromPost,
                date!(2024 - 02 - 29),
            )],
            date!(2024 - 06 - 01),
            &RuleParams::default(),
        );
        assert_eq!(
            d.reasons.len(),
            1,
            "the 12 months are text, not a second bar"
        );
        assert!(d.reasons[0].description.contains("2025-02-28"));
        assert!(d.reasons[0].description.contains("2026-02-28"));
    }

    #[test]
    fn rules_not_yet_started_bar_can_be_reported_as_matter() {
        let params = RuleParams {
            bar_not_yet_started_blocks: false,
            ..RuleParams::default()
        };
        let facts = [
            party("s1", PartyType::Warning, 0, date!(2026 - 06 - 01)),
            party("s2", PartyType::Expulsion, 0, date!(2026 - 06 - 01)),
        ];
        let d = draft(&facts, date!(2026 - 05 - 01), &params);
        assert_eq!(d.verdict, IssueNotBlocking);
        assert_eq!(d.barred_until, B::None);
        assert_eq!(d.reasons[0].barred_until, B::Date(date!(2027 - 06 - 01)));
        assert_eq!(d.reasons[1].barred_until, B::Permanent);
    }

    #[test]
    fn rules_verdict_order_is_severity() {
        assert!(NotAgree > Defer && Defer > IssueNotBlocking && IssueNotBlocking > NoIssue);
        assert!(B::Permanent > B::Date(date!(9999 - 12 - 31)));
        assert!(B::Date(date!(2000 - 01 - 01)) > B::None);
        assert_eq!(NotAgree.as_str(), "NOT_AGREE");
    }

    #[test]
    fn rules_odd_inputs_stay_matters() {
        // A sanction whose type is missing, a zero-month period, an out-of-range probation.
        let facts = [Fact::Sanction {
            name: "s1".into(),
            active: true,
            track: Track::Party,
            party: None,
            state: Some(StateType::Warning),
            probation_years: 0,
            decision_date: date!(2026 - 01 - 01),
            effective_date: date!(2026 - 01 - 01),
        }];
        let d = draft(&facts, date!(2026 - 01 - 02), &RuleParams::default());
        assert_eq!(d.verdict, IssueNotBlocking);
        assert_eq!(d.reasons[0].rule, MATTER_ON_RECORD);

        let params = RuleParams {
            admonition_months: 0,
            ..RuleParams::default()
        };
        let facts = [admon(
            "a1",
            AdmonishmentKind::Admonition,
            date!(2026 - 06 - 01),
        )];
        let d = draft(&facts, date!(2026 - 01 - 02), &params);
        assert_eq!((d.verdict, d.barred_until), (IssueNotBlocking, B::None));

        let facts = [party("s1", PartyType::Probation, 5, date!(2023 - 05 - 15))];
        let d = draft(&facts, date!(2026 - 01 - 02), &RuleParams::default());
        assert_eq!(d.barred_until, B::Date(date!(2027 - 05 - 15)));
    }

    #[test]
    fn rules_is_matter_follows_design() {
        assert!(clue("c", Disposal::Shelved, false).is_matter());
        assert!(pm("p", PmResult::UnderReported, date!(2025 - 01 - 01)).is_matter());
        assert!(!pm("p", PmResult::Consistent, date!(2025 - 01 - 01)).is_matter());
        assert!(!evaluation("e").is_matter());
        assert!(!engagement("g").is_matter());
        assert!(!retracted(petition("t", false, false)).is_matter());
    }

    #[test]
    fn rules_params_file_matches_defaults() {
        let shipped = include_str!("../../data/rules.toml");
        assert_eq!(
            RuleParams::from_toml(shipped).unwrap(),
            RuleParams::default()
        );
    }

    #[test]
    fn rules_params_partial_and_unknown_keys() {
        let p = RuleParams::from_toml("admonition_months = 9\n").unwrap();
        assert_eq!(p.admonition_months, 9);
        assert_eq!(p.party_warning_months, 12);
        assert_eq!(RuleParams::from_toml("").unwrap(), RuleParams::default());
        assert!(RuleParams::from_toml("admonition_month = 9\n").is_err());
        assert!(RuleParams::from_toml("admonition_months = \"six\"\n").is_err());
        assert!(RuleParams::from_toml("admonition_months = -1\n").is_err());
    }
}
