//! How records read at a terminal: one line of content whatever the view, a record in full, a record in a list.

use super::*;

/// One line describing a record's content, whatever its view.
pub fn summary_line(r: &proto::Record) -> String {
    match &r.payload {
        Some(Payload::Sanction(s)) => join(vec![
            label::<proto::SanctionTrack>(s.track),
            sanction_type(s.track, s.party_type, s.state_type),
            if s.probation_years > 0 {
                format!("察看 {} 年 years", s.probation_years)
            } else {
                String::new()
            },
            opt("决定 decided ", &s.decision_date),
            opt("生效 effective ", &s.effective_date),
            opt("文号 no. ", &s.decision_number),
            if s.form_of_discipline > 0 {
                format!(
                    "第{}种形态 form {}",
                    s.form_of_discipline, s.form_of_discipline
                )
            } else {
                String::new()
            },
        ]),
        Some(Payload::SanctionSummary(s)) => join(vec![
            label::<proto::SanctionTrack>(s.track),
            sanction_type(s.track, s.party_type, s.state_type),
            opt("决定 decided ", &s.decision_date),
            opt("生效 effective ", &s.effective_date),
        ]),
        Some(Payload::Admonishment(a)) => join(vec![
            label::<proto::AdmonishmentType>(a.r#type),
            a.date.clone(),
            opt("by ", &a.issuer),
        ]),
        Some(Payload::AdmonishmentSummary(a)) => join(vec![
            label::<proto::AdmonishmentType>(a.r#type),
            a.date.clone(),
        ]),
        Some(Payload::Clue(c)) => join(vec![
            label::<proto::ClueDisposal>(c.disposal),
            label::<proto::ClueStatus>(c.status),
            format!("来源 source {}", label::<proto::ClueSource>(c.source)),
            opt("received ", &c.received_date),
            opt("函询回复期限 reply due ", &c.reply_due_date),
            opt("结论 ", &c.conclusion),
        ]),
        Some(Payload::ClueSummary(c)) => join(vec![
            label::<proto::ClueDisposal>(c.disposal),
            label::<proto::ClueStatus>(c.status),
        ]),
        Some(Payload::OrgHandling(o)) => join(vec![
            label::<proto::OrgHandlingType>(o.r#type),
            o.date.clone(),
        ]),
        Some(Payload::PersonalMattersCheck(p)) => join(vec![
            format!("{} 年度报告 report", p.report_year),
            label::<proto::PersonalMattersResult>(p.result),
            opt("checked ", &p.check_date),
            opt("处理 ", &p.handling),
        ]),
        Some(Payload::Evaluation(e)) => join(vec![
            e.year.to_string(),
            label::<proto::EvaluationKind>(e.kind),
            label::<proto::EvaluationGrade>(e.grade),
        ]),
        Some(Payload::EvaluationSummary(e)) => join(vec![
            e.year.to_string(),
            label::<proto::EvaluationGrade>(e.grade),
        ]),
        Some(Payload::AuditEngagement(a)) => join(vec![
            label::<proto::AuditEngagementType>(a.r#type),
            format!("{}..{}", a.period_start, a.period_end),
            opt("报告 report ", &a.report_number),
            opt("", &a.audited_post),
        ]),
        Some(Payload::AuditFinding(f)) => {
            let r = f.rectification.clone().unwrap_or_default();
            join(vec![
                label::<proto::ProblemType>(f.problem_type),
                if f.amount_fen > 0 {
                    format!("{}.{:02} 元 yuan", f.amount_fen / 100, f.amount_fen % 100)
                } else {
                    String::new()
                },
                label::<proto::Responsibility>(f.responsibility),
                label::<proto::Transfer>(f.transfer),
                label::<proto::RectificationStatus>(r.status),
                opt("整改期限 deadline ", &r.deadline),
            ])
        }
        Some(Payload::Petition(p)) => join(vec![
            p.received_date.clone(),
            label::<proto::PetitionChannel>(p.channel),
            label::<proto::PetitionCategory>(p.category),
            label::<proto::PetitionStatus>(p.status),
            if p.specific {
                "线索具体 specific".into()
            } else {
                String::new()
            },
            if p.anonymous {
                "匿名 anonymous".into()
            } else {
                String::new()
            },
        ]),
        Some(Payload::PetitionSummary(p)) => join(vec![
            p.received_date.clone(),
            label::<proto::PetitionCategory>(p.category),
            label::<proto::PetitionStatus>(p.status),
            if p.specific {
                "线索具体 specific".into()
            } else {
                String::new()
            },
        ]),
        Some(Payload::InspectionFinding(f)) => {
            let r = f.rectification.clone().unwrap_or_default();
            join(vec![
                f.tour_round.clone(),
                f.unit_name.clone(),
                label::<proto::InspectionCategory>(f.category),
                if f.concerns_unit_head {
                    "涉及一把手 unit head".into()
                } else {
                    String::new()
                },
                label::<proto::Transfer>(f.transfer),
                label::<proto::RectificationStatus>(r.status),
                opt("整改期限 deadline ", &r.deadline),
            ])
        }
        Some(Payload::ArchiveReview(a)) => join(vec![
            a.review_date.clone(),
            label::<proto::ArchiveReviewResult>(a.result),
            opt("审核人 reviewer ", &a.reviewer),
            opt("", &a.note),
            opt("", &a.opinion_request),
        ]),
        None => "(无内容 no content)".into(),
    }
}

fn sanction_type(track: i32, party: i32, state: i32) -> String {
    if track == proto::SanctionTrack::State as i32 {
        label::<proto::StateSanctionType>(state)
    } else {
        label::<proto::PartySanctionType>(party)
    }
}

/// One record in full: what it is, its state and where it came from.
pub fn render_record(r: &proto::Record) -> String {
    let mut out = format!("{}\n", r.name);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH as u16);
    t.add_row(vec!["类别 kind".into(), label::<proto::RecordKind>(r.kind)]);
    t.add_row(vec!["内容 content".into(), summary_line(r)]);
    t.add_row(vec!["日期 date".into(), r.event_date.clone()]);
    let mut state = label::<proto::RecordState>(r.state);
    if !r.retraction_reason.is_empty() {
        state.push_str(&format!(": {}", r.retraction_reason));
    }
    t.add_row(vec!["状态 state".into(), state]);
    t.add_row(vec!["视图 view".into(), label::<proto::RecordView>(r.view)]);
    t.add_row(vec![
        "密级 classification".into(),
        label::<proto::Classification>(r.classification),
    ]);
    t.add_row(vec![
        "来源 source".into(),
        format!(
            "{} {} v{} (revision {})",
            system(&r.owner_system),
            r.source_record_id,
            r.source_version,
            r.revision
        ),
    ]);
    if let Some(p) = &r.provenance {
        t.add_row(vec![
            "报送 submitted".into(),
            format!(
                "{} by {}",
                date_time(p.submit_time.as_ref()),
                system(&p.submitting_system)
            ),
        ]);
    }
    if let Some(Payload::Petition(p)) = &r.payload {
        if !p.summary.is_empty() {
            t.add_row(vec!["摘要 summary".into(), p.summary.clone()]);
        }
        if !p.forwarded_to.is_empty() {
            t.add_row(vec!["转送 forwarded to".into(), p.forwarded_to.clone()]);
        }
        if let Some(i) = &p.informant {
            t.add_row(vec![
                "检举人 informant".into(),
                join(vec![
                    i.name.clone(),
                    i.unit.clone(),
                    i.contact.clone(),
                    i.address.clone(),
                ]),
            ]);
        }
    }
    if let Some(Payload::AuditFinding(f)) = &r.payload
        && !f.characterisation.is_empty()
    {
        t.add_row(vec!["定性".into(), f.characterisation.clone()]);
    }
    out.push_str(&format!("{t}\n"));
    out
}

/// A record as two lines of a list: its name, then date, kind, state and content.
pub fn render_record_line(r: &proto::Record) -> String {
    let mut out = format!("{}\n", r.name);
    let mut head = format!(
        "{}  {}  {}",
        r.event_date,
        label::<proto::RecordKind>(r.kind),
        label::<proto::RecordState>(r.state)
    );
    if r.view != proto::RecordView::Full as i32 {
        head.push_str(&format!("  {}", label::<proto::RecordView>(r.view)));
    }
    out.push_str(&wrap(&format!("{head}  {}", summary_line(r)), 4));
    fit(out)
}
