//! What each `cadrex client` subcommand group does: cadres, records, the access log, the vetting workflow and the audit worklist, each a call or a few and the answer printed.

use super::*;

pub(super) async fn cadre_command(s: &Session, command: CadreCommand) -> anyhow::Result<()> {
    match command {
        CadreCommand::Lookup { id_number } => {
            let c = s.lookup(&id_number).await?;
            s.print(|| render::render_cadre(&c), &c, "Cadre")?;
        }
        CadreCommand::Get { cadres } => {
            for given in cadres {
                let name = s.cadre(&given).await?;
                let c = s
                    .cadres()
                    .get_cadre(proto::GetCadreRequest { name })
                    .await
                    .or_explain("GetCadre", &s.conn)
                    .await?;
                s.print(|| render::render_cadre(&c), &c, "Cadre")?;
            }
        }
        CadreCommand::List {
            filter,
            include_past_posts,
            page_size,
        } => {
            let mut all = proto::ListCadresResponse::default();
            let mut token = String::new();
            loop {
                let page = s
                    .cadres()
                    .list_cadres(proto::ListCadresRequest {
                        page_size,
                        page_token: token,
                        filter: filter.clone(),
                        include_past_posts,
                    })
                    .await
                    .or_explain("ListCadres", &s.conn)
                    .await?;
                all.cadres.extend(page.cadres);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || all.cadres.iter().map(render::render_cadre_line).collect(),
                &all,
                "ListCadresResponse",
            )?;
        }
    }
    Ok(())
}

/// Every record under `parent` that `filter` selects, all pages in one response.
async fn list_records(
    s: &Session,
    parent: String,
    filter: String,
) -> anyhow::Result<proto::ListRecordsResponse> {
    let mut all = proto::ListRecordsResponse::default();
    let mut token = String::new();
    loop {
        let page = s
            .records()
            .list_records(proto::ListRecordsRequest {
                parent: parent.clone(),
                page_size: 1000,
                page_token: token,
                filter: filter.clone(),
            })
            .await
            .or_explain("ListRecords", &s.conn)
            .await?;
        all.records.extend(page.records);
        if all.cursor.is_empty() {
            all.cursor = page.cursor;
        }
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

pub(super) async fn record_command(s: &Session, command: RecordCommand) -> anyhow::Result<()> {
    match command {
        RecordCommand::Get { name } => {
            let r = s
                .records()
                .get_record(proto::GetRecordRequest { name })
                .await
                .or_explain("GetRecord", &s.conn)
                .await?;
            s.print(|| render::render_record(&r), &r, "Record")?;
        }
        RecordCommand::List { cadre, filter } => {
            let parent = match cadre {
                Some(c) => s.cadre(&c).await?,
                None => "cadres/-".into(),
            };
            let all = list_records(s, parent, filter).await?;
            s.print(
                || all.records.iter().map(render::render_record_line).collect(),
                &all,
                "ListRecordsResponse",
            )?;
        }
        RecordCommand::Retract { name, reason } => {
            let r = s
                .records()
                .retract_record(proto::RetractRecordRequest {
                    name,
                    reason,
                    etag: String::new(),
                })
                .await
                .or_explain("RetractRecord", &s.conn)
                .await?;
            s.print(|| render::render_record(&r), &r, "Record")?;
        }
    }
    Ok(())
}

pub(super) async fn log_command(s: &Session, command: LogCommand) -> anyhow::Result<()> {
    let mut client = AccessLogServiceClient::new(s.channel.clone());
    match command {
        LogCommand::Events {
            cadre,
            principal,
            method,
            since,
            until,
        } => {
            let cadre = match cadre {
                Some(c) => s.cadre(&c).await?,
                None => String::new(),
            };
            let start_time = since.map(|v| instant("--since", &v)).transpose()?;
            let end_time = until.map(|v| instant("--until", &v)).transpose()?;
            let method = method
                .map(|m| protojson::full_method(&m))
                .unwrap_or_default();
            let mut all = proto::ListAccessEventsResponse::default();
            let mut token = String::new();
            loop {
                let page = client
                    .list_access_events(proto::ListAccessEventsRequest {
                        page_size: 1000,
                        page_token: token,
                        cadre: cadre.clone(),
                        start_time,
                        end_time,
                        principal: principal.clone().unwrap_or_default(),
                        method: method.clone(),
                    })
                    .await
                    .or_explain("ListAccessEvents", &s.conn)
                    .await?;
                all.access_events.extend(page.access_events);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || render::render_events(&all.access_events),
                &all,
                "ListAccessEventsResponse",
            )?;
        }
        LogCommand::Checkpoint => {
            let cp = client
                .get_checkpoint(proto::GetCheckpointRequest {})
                .await
                .or_explain("GetCheckpoint", &s.conn)
                .await?;
            // The same JSON in both forms: a checkpoint is kept as a file, and
            // `cadrex log verify --checkpoint` reads it back.
            println!("{}", protojson::to_json_text(&cp, "cadrex.v1.Checkpoint")?);
        }
    }
    Ok(())
}

pub(super) async fn opinion_command(s: &Session, command: OpinionCommand) -> anyhow::Result<()> {
    let mut client = OpinionServiceClient::new(s.channel.clone());
    match command {
        OpinionCommand::Create {
            cadres,
            purpose,
            due,
            note,
        } => {
            let purpose = enum_value(
                "OPINION_PURPOSE_",
                &purpose,
                proto::OpinionPurpose::from_str_name,
            )?;
            let mut names = Vec::with_capacity(cadres.len());
            for c in &cadres {
                names.push(s.cadre(c).await?);
            }
            let r = client
                .create_opinion_request(proto::CreateOpinionRequestRequest {
                    cadres: names,
                    purpose: purpose as i32,
                    due_date: due.unwrap_or_default(),
                    note: note.unwrap_or_default(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .or_explain("CreateOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
        OpinionCommand::List { filter } => {
            let mut all = proto::ListOpinionRequestsResponse::default();
            let mut token = String::new();
            loop {
                let page = client
                    .list_opinion_requests(proto::ListOpinionRequestsRequest {
                        page_size: 100,
                        page_token: token,
                        filter: filter.clone(),
                    })
                    .await
                    .or_explain("ListOpinionRequests", &s.conn)
                    .await?;
                all.opinion_requests.extend(page.opinion_requests);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || {
                    let each: Vec<String> = all
                        .opinion_requests
                        .iter()
                        .map(render::render_request)
                        .collect();
                    each.join("\n")
                },
                &all,
                "ListOpinionRequestsResponse",
            )?;
        }
        OpinionCommand::Show { request } => {
            let r = client
                .get_opinion_request(proto::GetOpinionRequestRequest { name: request })
                .await
                .or_explain("GetOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
        OpinionCommand::Draft { request, cadre } => {
            let cadre = s.cadre(&cadre).await?;
            let d = client
                .draft_opinion(proto::DraftOpinionRequest {
                    name: request,
                    cadre: cadre.clone(),
                    as_of_date: String::new(),
                })
                .await
                .or_explain("DraftOpinion", &s.conn)
                .await?;
            if s.output == Output::Json {
                return s.print(String::new, &d, "OpinionDraft");
            }
            // The summaries of the cited records: one listing of the cadre's
            // records rather than one read per citation.
            let records = if d.reasons.iter().any(|r| !r.records.is_empty()) {
                list_records(s, cadre, String::new()).await?.records
            } else {
                Vec::new()
            };
            print!("{}", render::render_draft(&d, &records));
        }
        OpinionCommand::Readiness { request, cadre } => {
            let cadre = s.cadre(&cadre).await?;
            let r = client
                .get_vetting_readiness(proto::GetVettingReadinessRequest {
                    name: request,
                    cadre: cadre.clone(),
                })
                .await
                .or_explain("GetVettingReadiness", &s.conn)
                .await?;
            if s.output == Output::Json {
                return s.print(String::new, &r, "VettingReadiness");
            }
            let records = list_records(s, cadre, String::new()).await?.records;
            print!("{}", render::render_readiness(&r, &records));
        }
        OpinionCommand::Reply {
            request,
            cadre,
            verdict: v,
            text,
            signer,
            cited,
            correction_reason,
            deviation_reason,
        } => {
            let v = enum_value("VERDICT_", &v, proto::Verdict::from_str_name)?;
            let cadre = s.cadre(&cadre).await?;
            let r = client
                .reply_opinion(proto::ReplyOpinionRequest {
                    name: request,
                    cadre,
                    verdict: v as i32,
                    text,
                    cited_records: cited,
                    signer,
                    as_of_time: None,
                    correction_reason: correction_reason.unwrap_or_default(),
                    deviation_reason: deviation_reason.unwrap_or_default(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .or_explain("ReplyOpinion", &s.conn)
                .await?;
            s.print(|| render::render_reply(&r), &r, "OpinionReply")?;
        }
        OpinionCommand::Withdraw { request, reason } => {
            let r = client
                .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
                    name: request,
                    reason,
                })
                .await
                .or_explain("WithdrawOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
    }
    Ok(())
}

pub(super) async fn audit_command(s: &Session, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Candidates => {
            let mut client = DossierServiceClient::new(s.channel.clone());
            let mut all = proto::ListAuditCandidatesResponse::default();
            let mut token = String::new();
            loop {
                let page = client
                    .list_audit_candidates(proto::ListAuditCandidatesRequest {
                        page_size: 1000,
                        page_token: token,
                    })
                    .await
                    .or_explain("ListAuditCandidates", &s.conn)
                    .await?;
                all.audit_candidates.extend(page.audit_candidates);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || render::render_candidates(&all),
                &all,
                "ListAuditCandidatesResponse",
            )?;
        }
    }
    Ok(())
}
