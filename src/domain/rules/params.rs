//! `RuleParams`: every period of the rules, with their sources, and their loading from TOML.

use figment::providers::Format;
use serde::{Deserialize, Serialize};

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
    /// Whether a bar that starts after the as-of date blocks (NOT_AGREE). See [`draft`](super::draft).
    pub bar_not_yet_started_blocks: bool,
    /// 离任必审: months after a unit-head tenure ends before a missing departure audit is flagged.
    pub departure_audit_grace_months: u32,
    /// 党政一把手在同一单位任职满三年必须进行任中或任期经济责任审计: months in one unit after which
    /// an in-office or departure audit is due, and how recent one must be.
    pub term_audit_months: u32,
    /// 一把手离任、转任前提前与审计机关沟通: days ahead that a planned departure enters the audit
    /// office's worklist.
    pub planned_departure_days: u32,
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
            departure_audit_grace_months: 6,
            term_audit_months: 36,
            planned_departure_days: 90,
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
