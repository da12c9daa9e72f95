//! How `cadrex client` shows answers to a person: zh-CN labels with the English name beside them, dates in Asia/Shanghai, at most 100 columns.
//!
//! Every function here is pure (a message in, text out), so the layout can be
//! tested without a server. Enum values read as the terms in DESIGN §4
//! (`严重警告 SERIOUS_WARNING`); a value this build does not know reads as its
//! number rather than as a wrong word.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::proto::{self, record::Payload};

mod opinions;
mod records;

pub use opinions::{
    RuleGroup, by_rule, render_dossier, render_draft, render_readiness, render_reply,
    render_request,
};
pub use records::{render_record, render_record_line, summary_line};

/// Display columns every line stays within (CJK characters count as two).
pub const WIDTH: usize = 100;

/// Dates and times are shown in Asia/Shanghai, which has been UTC+8 all year
/// since 1991: a fixed offset needs no time-zone database.
const SHANGHAI: time::UtcOffset = time::macros::offset!(+8);

/// An enum of the contract with its zh-CN terms.
pub trait Label: Sized + Copy + TryFrom<i32> {
    /// Prefix of every value name (`PARTY_SANCTION_TYPE_`), dropped when shown.
    const PREFIX: &'static str;
    /// The zh-CN term; empty for the unspecified value.
    fn zh(self) -> &'static str;
    /// The proto value name.
    fn name(self) -> &'static str;
}

macro_rules! labels {
    ($($ty:ident, $prefix:literal { $($var:ident => $zh:literal),* $(,)? })*) => {
        $(impl Label for proto::$ty {
            const PREFIX: &'static str = $prefix;
            fn zh(self) -> &'static str {
                match self {
                    $(proto::$ty::$var => $zh,)*
                    proto::$ty::Unspecified => "",
                }
            }
            fn name(self) -> &'static str {
                self.as_str_name()
            }
        })*
    };
}

labels! {
    RecordKind, "RECORD_KIND_" {
        Sanction => "党纪政务处分", Admonishment => "诫勉及谈话提醒等", Clue => "问题线索处置",
        OrgHandling => "组织处理", PersonalMattersCheck => "个人有关事项查核",
        Evaluation => "民主测评/年度考核", AuditEngagement => "经济责任审计",
        AuditFinding => "审计发现问题", Petition => "信访举报",
        InspectionFinding => "巡视巡察反馈问题", ArchiveReview => "干部档案审核",
    }
    Classification, "CLASSIFICATION_" {
        Internal => "内部", WorkSecret => "工作秘密", Secret => "秘密",
        Confidential => "机密", TopSecret => "绝密",
    }
    RecordState, "RECORD_STATE_" { Active => "有效", Retracted => "已撤回" }
    ReadinessItem, "READINESS_ITEM_" {
        ArchiveReview => "档案必审", PersonalMatters => "个人有关事项报告必核",
        DisciplineOpinion => "纪检监察机关意见必听", SpecificPetitions => "线索具体的信访举报必查",
    }
    ReadinessState, "READINESS_STATE_" {
        Satisfied => "已满足", Missing => "缺失", Blocking => "存在障碍",
    }
    UnitHeadFlag, "UNIT_HEAD_FLAG_" {
        DepartureAuditMissing => "离任审计缺失", TermAuditDue => "任期审计到期",
    }
    RecordView, "RECORD_VIEW_" { Full => "完整", Summary => "摘要", Tombstone => "已撤回无内容" }
    SanctionTrack, "SANCTION_TRACK_" { Party => "党纪处分", State => "政务处分" }
    PartySanctionType, "PARTY_SANCTION_TYPE_" {
        Warning => "警告", SeriousWarning => "严重警告", RemovalFromPartyPost => "撤销党内职务",
        Probation => "留党察看", Expulsion => "开除党籍",
    }
    StateSanctionType, "STATE_SANCTION_TYPE_" {
        Warning => "警告", Demerit => "记过", MajorDemerit => "记大过", Demotion => "降级",
        DismissalFromPost => "撤职", ExpulsionFromService => "开除",
    }
    AdmonishmentType, "ADMONISHMENT_TYPE_" {
        TalkReminder => "谈话提醒", Criticism => "批评教育", OrderedSelfReview => "责令检查",
        Admonition => "诫勉",
    }
    ClueSource, "CLUE_SOURCE_" {
        Petition => "信访举报", Inspection => "巡视巡察", Audit => "审计移送",
        Organization => "组织部门", Other => "其他",
    }
    ClueDisposal, "CLUE_DISPOSAL_" {
        Registered => "受理登记", TalkOrInquiry => "谈话函询", PreliminaryCheck => "初步核实",
        CaseOpened => "立案审查调查", Shelved => "暂存待查", Closed => "予以了结",
    }
    ClueStatus, "CLUE_STATUS_" { Open => "未了结", Concluded => "已了结" }
    OrgHandlingType, "ORG_HANDLING_TYPE_" {
        SuspensionForReview => "停职检查", Reassignment => "调整职务",
        OrderedResignation => "责令辞职", RemovalFromPost => "免职", DemotionInRank => "降职",
    }
    PersonalMattersResult, "PERSONAL_MATTERS_RESULT_" {
        Consistent => "如实", UnderReported => "漏报", Concealed => "瞒报",
    }
    EvaluationKind, "EVALUATION_KIND_" {
        DemocraticAssessment => "民主测评", AnnualReview => "年度考核",
    }
    EvaluationGrade, "EVALUATION_GRADE_" {
        Excellent => "优秀", Competent => "称职", BasicallyCompetent => "基本称职",
        Incompetent => "不称职",
    }
    AuditEngagementType, "AUDIT_ENGAGEMENT_TYPE_" { InOffice => "任中审计", Departure => "离任审计" }
    ProblemType, "PROBLEM_TYPE_" {
        IrregularFunds => "违规金额", NoncompliantManagement => "管理不规范",
        LossWaste => "损失浪费", NonMonetary => "非金额", HarmToPublic => "侵害群众利益",
    }
    Responsibility, "RESPONSIBILITY_" {
        Direct => "直接责任", Supervisory => "主管责任", Leadership => "领导责任",
    }
    Transfer, "TRANSFER_" {
        None => "未移送", Discipline => "移送纪检监察机关", Judiciary => "移送司法机关",
        CompetentDept => "移送主管部门", Organization => "移送组织部门",
    }
    RectificationStatus, "RECTIFICATION_STATUS_" {
        Open => "未整改", InProgress => "整改中", Done => "已整改",
    }
    PetitionChannel, "PETITION_CHANNEL_" {
        Letter => "来信", Visit => "来访", Phone => "来电", Online => "网络",
    }
    PetitionCategory, "PETITION_CATEGORY_" {
        AccusationDiscipline => "检举控告-违纪", AccusationDutyCrime => "检举控告-职务违法犯罪",
        Appeal => "申诉", CriticismSuggestion => "批评建议",
    }
    InspectionCategory, "INSPECTION_CATEGORY_" {
        Political => "政治建设", Integrity => "党风廉政", Personnel => "选人用人",
        Conduct => "作风", Other => "其他",
    }
    ArchiveReviewResult, "ARCHIVE_REVIEW_RESULT_" {
        Consistent => "一致", Discrepancies => "存在问题",
    }
    PetitionStatus, "PETITION_STATUS_" {
        Received => "收到", Accepted => "受理", Forwarded => "转送", Rejected => "不予受理",
        InDisposal => "办理中", Closed => "办结",
    }
    Verdict, "VERDICT_" {
        NoIssue => "未发现影响使用的问题", IssueNotBlocking => "有问题但不影响使用",
        Defer => "暂缓", NotAgree => "不同意",
    }
    OpinionRequestState, "OPINION_REQUEST_STATE_" {
        Pending => "待回复", Replied => "已回复", Withdrawn => "已撤回",
    }
    OpinionPurpose, "OPINION_PURPOSE_" {
        Promotion => "提拔任用", FurtherUse => "进一步使用", ReElection => "换届",
        Award => "评先评优", Transfer => "交流",
    }
    Purpose, "PURPOSE_" {
        AppointmentVetting => "任前廉政审查", CaseHandling => "案件办理",
        RoutineSupervision => "日常监督", AuditPlanning => "审计计划",
        PetitionHandling => "信访办理", PreInspectionBriefing => "巡视巡察进驻前了解情况",
    }
    Gender, "GENDER_" { Male => "男", Female => "女" }
    Decision, "DECISION_" { Allow => "允许", Deny => "拒绝", Validated => "仅校验" }
}

/// `严重警告 SERIOUS_WARNING` for a wire value of `E`; `-` for the
/// unspecified value, the number for one this build does not know.
pub fn label<E: Label>(value: i32) -> String {
    match E::try_from(value) {
        Ok(e) if !e.zh().is_empty() => {
            format!(
                "{} {}",
                e.zh(),
                e.name().strip_prefix(E::PREFIX).unwrap_or(e.name())
            )
        }
        Ok(_) => "-".into(),
        Err(_) => format!("({value})"),
    }
}

/// Just the zh-CN term (for compact cells), or what [`label`] shows.
pub fn zh<E: Label>(value: i32) -> String {
    match E::try_from(value) {
        Ok(e) if !e.zh().is_empty() => e.zh().to_string(),
        _ => label::<E>(value),
    }
}

/// A timestamp's date in Asia/Shanghai, `YYYY-MM-DD`; empty when absent.
pub fn date(t: Option<&prost_types::Timestamp>) -> String {
    shanghai(t)
        .map(|d| {
            let (y, m, day) = (d.year(), d.month() as u8, d.day());
            format!("{y:04}-{m:02}-{day:02}")
        })
        .unwrap_or_default()
}

/// A timestamp in Asia/Shanghai to the second, `YYYY-MM-DD HH:MM:SS`.
pub fn date_time(t: Option<&prost_types::Timestamp>) -> String {
    shanghai(t)
        .map(|d| {
            format!(
                "{} {:02}:{:02}:{:02}",
                date(t),
                d.hour(),
                d.minute(),
                d.second()
            )
        })
        .unwrap_or_default()
}

fn shanghai(t: Option<&prost_types::Timestamp>) -> Option<time::OffsetDateTime> {
    let t = t?;
    time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .map(|d| d.to_offset(SHANGHAI))
}

/// `urn:cadrex:system:discipline:360821:case-mis` as `discipline:360821:case-mis`.
pub fn system(uri: &str) -> &str {
    uri.strip_prefix("urn:cadrex:system:").unwrap_or(uri)
}

/// A record's name relative to its cadre (`records/…`) when the cadre is
/// already named above it, so that tables stay narrow.
pub fn short<'a>(record: &'a str, cadre: &str) -> &'a str {
    record
        .strip_prefix(cadre)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(record)
}

/// The dossier's record-list flags with their labels, in the order both the
/// terminal and the printable dossier show them.
pub fn flag_lists(f: &proto::DossierFlags) -> [(&'static str, &Vec<String>); 5] {
    [
        ("未了结线索 open clues", &f.open_clues),
        (
            "未办结具体信访 unclosed specific petitions",
            &f.unclosed_specific_petitions,
        ),
        (
            "移送纪检 findings transferred to discipline",
            &f.findings_transferred_to_discipline,
        ),
        (
            "逾期未整改 unrectified past deadline",
            &f.unrectified_findings_past_deadline,
        ),
        (
            "瞒报 concealed personal matters",
            &f.concealed_personal_matters,
        ),
    ]
}

/// A table at most [`WIDTH`] columns wide, wrapping its cells.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH as u16)
        .set_header(header.to_vec());
    t
}

/// `text` wrapped to [`WIDTH`] columns, each line starting with `indent`
/// spaces; breaks at a space where one is near, else between characters
/// (Chinese text has no spaces). Keeps the text's own line breaks.
pub fn wrap(text: &str, indent: usize) -> String {
    let room = WIDTH.saturating_sub(indent).max(10);
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut width = 0;
        for c in line.chars() {
            let w = c.width().unwrap_or(0);
            if width + w > room {
                let (head, tail) = match current.rfind(' ') {
                    Some(i) if i > 0 && current[..i].width() > room / 2 => {
                        (current[..i].to_string(), current[i + 1..].to_string())
                    }
                    _ => (std::mem::take(&mut current), String::new()),
                };
                out.push_str(&pad);
                out.push_str(head.trim_end());
                out.push('\n');
                current = tail;
                width = current.width();
            }
            current.push(c);
            width += w;
        }
        out.push_str(&pad);
        out.push_str(&current);
        out.push('\n');
    }
    out
}

/// Every line of `text` within [`WIDTH`]: lines that fit (tables included)
/// are left as they are, longer ones are wrapped.
fn fit(text: String) -> String {
    if text.lines().all(|l| l.width() <= WIDTH) {
        text
    } else {
        wrap(&text, 0)
    }
}

fn join(parts: Vec<String>) -> String {
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(prefix: &str, v: &str) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!("{prefix}{v}")
    }
}

/// A cadre's identity and posts.
pub fn render_cadre(c: &proto::Cadre) -> String {
    let mut out = format!(
        "{}  {}  {}{}\n",
        c.display_name,
        label::<proto::Gender>(c.gender),
        c.id_number,
        if c.id_number_masked {
            " (已遮蔽 masked)"
        } else {
            ""
        },
    );
    out.push_str(&format!(
        "{}  管理单位 managed at {}{}\n",
        c.name,
        c.managing_division,
        opt("  出生 born ", &c.birth_date)
    ));
    if !c.posts.is_empty() {
        let mut posts = table(&[
            "单位 unit",
            "职务 title",
            "职级 rank",
            "一把手",
            "起 from",
            "止 to",
        ]);
        for p in &c.posts {
            posts.add_row(vec![
                p.unit_name.clone(),
                p.title.clone(),
                p.rank.clone(),
                if p.unit_head { "是" } else { "" }.into(),
                p.start_date.clone(),
                p.end_date.clone(),
            ]);
        }
        out.push_str(&format!("{posts}\n"));
    }
    fit(out)
}

/// What a unit-head tenure is owed, for a person: its flags, a planned
/// departure, and the engagements already covering part of it.
pub fn tenure_status(t: &proto::UnitHeadTenure, cadre: &str) -> String {
    let mut parts: Vec<String> = t
        .flags
        .iter()
        .map(|f| label::<proto::UnitHeadFlag>(*f))
        .collect();
    if t.planned_departure {
        parts.push(format!("拟于 {} 离任 planned departure", t.end_date));
    }
    for e in &t.covering_engagements {
        parts.push(format!("已审 audited: {}", short(e, cadre)));
    }
    parts.join("\n")
}

/// A cadre's unit-head tenures as a table (empty when it has none).
pub fn render_tenures(tenures: &[proto::UnitHeadTenure], cadre: &str) -> String {
    if tenures.is_empty() {
        return String::new();
    }
    let mut t = table(&["一把手任职 unit head of", "起 from", "止 to", "审计 audits"]);
    for x in tenures {
        t.add_row(vec![
            format!("{}\n{}", x.unit_name, x.unit_credit_code),
            x.start_date.clone(),
            if x.current && x.end_date.is_empty() {
                "今 now".into()
            } else {
                x.end_date.clone()
            },
            tenure_status(x, cadre),
        ]);
    }
    format!("{t}\n")
}

/// The audit office's worklist, one block per tenure rather than a table:
/// cadre names and credit codes are long tokens a table would break, and
/// operators copy them whole.
pub fn render_candidates(r: &proto::ListAuditCandidatesResponse) -> String {
    let mut out = String::new();
    for c in &r.audit_candidates {
        let x = c.tenure.clone().unwrap_or_default();
        out.push_str(&wrap(&format!("{}  {}", c.display_name, c.cadre), 0));
        out.push_str(&wrap(
            &format!(
                "一把手 unit head of {} {}  {} – {}",
                x.unit_name,
                x.unit_credit_code,
                x.start_date,
                if x.end_date.is_empty() {
                    "今 now"
                } else {
                    &x.end_date
                }
            ),
            2,
        ));
        for line in tenure_status(&x, &c.cadre).lines() {
            out.push_str(&wrap(line, 2));
        }
    }
    if r.audit_candidates.is_empty() {
        out.push_str("无 none\n");
    }
    fit(out)
}

/// One line per cadre, for lists.
pub fn render_cadre_line(c: &proto::Cadre) -> String {
    fit(format!(
        "{}  {}  {}  {}\n",
        c.name, c.display_name, c.id_number, c.managing_division
    ))
}

/// Access-log rows, two or more lines each.
pub fn render_events(events: &[proto::AccessEvent]) -> String {
    let mut out = String::new();
    for e in events {
        let method = e.method.rsplit('/').next().unwrap_or(&e.method);
        let mut head = format!(
            "#{}  {}  {}  {}  {}",
            e.seq,
            date_time(e.time.as_ref()),
            label::<proto::Decision>(e.decision),
            crate::tools::connect::code_name(e.status_code),
            method
        );
        if !e.officer.is_empty() {
            head.push_str(&format!("  经办人 officer {}", e.officer));
        }
        out.push_str(&wrap(&head, 0));
        let mut detail = format!("by {}", system(&e.principal));
        if !e.purpose.is_empty() {
            detail.push_str(&format!("  用途 purpose {}", e.purpose));
        }
        out.push_str(&wrap(&detail, 4));
        for r in &e.resources {
            out.push_str(&wrap(r, 4));
        }
    }
    fit(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_read_as_terms() {
        assert_eq!(
            label::<proto::PartySanctionType>(2),
            "严重警告 SERIOUS_WARNING"
        );
        assert_eq!(label::<proto::RecordKind>(1), "党纪政务处分 SANCTION");
        assert_eq!(label::<proto::Verdict>(0), "-");
        assert_eq!(label::<proto::Verdict>(99), "(99)");
    }

    /// Every record kind of `Kind::ALL` reads as a zh-CN term and its stored
    /// name, so a new kind is checked here without editing this test.
    #[test]
    fn every_domain_kind_has_a_label() {
        for kind in crate::domain::records::Kind::ALL {
            assert!(!kind.to_proto().zh().is_empty(), "{kind:?}");
            let shown = label::<proto::RecordKind>(kind.to_proto() as i32);
            assert!(shown.ends_with(&format!(" {}", kind.as_str())), "{shown}");
        }
    }

    #[test]
    fn timestamps_are_dates_in_shanghai() {
        // 2026-01-05 16:30 UTC is already the 6th in Shanghai.
        let t = prost_types::Timestamp {
            seconds: 1_767_630_600,
            nanos: 0,
        };
        assert_eq!(date(Some(&t)), "2026-01-06");
        assert_eq!(date_time(Some(&t)), "2026-01-06 00:30:00");
        assert_eq!(date(None), "");
    }

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let text = format!("{} {}", "经查".repeat(40), "word ".repeat(40));
        for line in wrap(&text, 4).lines() {
            assert!(line.width() <= WIDTH, "{line}");
            assert!(line.starts_with("    "));
        }
        assert_eq!(wrap("a\nb", 0), "a\nb\n");
    }
}
