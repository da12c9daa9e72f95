#!/usr/bin/env python3
"""A county inspection tour (巡察组) working with cadrex: find the leaders of the unit it will inspect,
brief itself on one of them before it is stationed, and report what it found.

Usage: inspection.py HOST:PORT PKI_DIR

Run it after walkthrough.py, whose cadre (李四, head of 吉安县交通运输局) is the one inspected. It
calls as the development system `inspection-360821`, except for one petition it first files as
`petition-360821` with an informant's name, so that there is an informant for the exchange to keep
from the tour. It checks what an inspection system is promised (docs/reference.md §2): the
公民身份号码 masked, petitions as summaries with no informant, no dossier for any purpose but
PRE_INSPECTION_BRIEFING. Re-running it is safe: every write is keyed by its source record id and
carries a request_id.
Needs: pip install grpcio grpcio-tools grpcio-status
"""
import sys

import grpc
from google.protobuf import text_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from cadrex_example import OFFICER, channel, fail, load_stubs
from walkthrough import ID_NUMBER, UNIT_CREDIT_CODE

WHO = "inspection-360821"
INFORMANT = "欧阳晓岚"  # fictitious, like every name here


def file_petition(ch, records_pb2, records_grpc):
    """As the county letters-and-visits bureau: a named report about the cadre."""
    record = records_pb2.Record(
        cadre_id_number=ID_NUMBER,
        source_record_id="XF-2025-0901",
        source_version=1,
        classification=records_pb2.CLASSIFICATION_WORK_SECRET,
        petition=records_pb2.Petition(
            received_date="2025-09-15",
            channel=records_pb2.PETITION_CHANNEL_LETTER,
            category=records_pb2.PETITION_CATEGORY_ACCUSATION_DISCIPLINE,
            specific=True,
            status=records_pb2.PETITION_STATUS_ACCEPTED,
            summary="反映其在农村公路养护项目招标中为亲属企业谋取利益",
            informant=records_pb2.Informant(name=INFORMANT, unit="吉安县某运输公司职工", contact="13900000901"),
        ),
    )
    stub = records_grpc.RecordServiceStub(ch)
    stub.SubmitRecord(records_pb2.SubmitRecordRequest(record=record, request_id="inspection-example-XF-2025-0901"),
                      timeout=10, metadata=OFFICER)


def leaders_of_unit(cadres, cadres_pb2):
    """Everyone holding a post in the unit now, every page."""
    found, token = [], ""
    while True:
        page = cadres.ListCadres(
            cadres_pb2.ListCadresRequest(filter=f'unit_credit_code = "{UNIT_CREDIT_CODE}"', page_token=token),
            timeout=10, metadata=OFFICER,
        )
        found += page.cadres
        if not page.next_page_token:
            return found
        token = page.next_page_token


def refusal_reason(e):
    """The ErrorInfo reason of a refusal, or None."""
    status = rpc_status.from_call(e)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


def main():
    if len(sys.argv) != 3:
        fail(__doc__.strip())
    target, pki = sys.argv[1], sys.argv[2]
    load_stubs()
    from cadrex.v1 import (cadres_pb2, cadres_pb2_grpc, dossier_pb2, dossier_pb2_grpc, opinions_pb2, records_pb2,
                           records_pb2_grpc)

    with channel(target, pki, "petition-360821") as ch:
        file_petition(ch, records_pb2, records_pb2_grpc)

    with channel(target, pki, WHO) as ch:
        cadres = cadres_pb2_grpc.CadreServiceStub(ch)
        dossiers = dossier_pb2_grpc.DossierServiceStub(ch)
        records = records_pb2_grpc.RecordServiceStub(ch)

        # 1. Who leads the unit: a tour names leaders by name and post, never by full id number.
        masked = ID_NUMBER[:6] + "*" * 8 + ID_NUMBER[-4:]
        leaders = leaders_of_unit(cadres, cadres_pb2)
        for c in leaders:
            posts = [p for p in c.posts if p.unit_credit_code == UNIT_CREDIT_CODE]
            print("leader:   ", c.name, c.display_name, c.id_number, ", ".join(p.title for p in posts))
        cadre = next((c for c in leaders if c.id_number == masked), None)
        if cadre is None:
            fail(f"no leader of {UNIT_CREDIT_CODE} with id number {masked}: run walkthrough.py first")
        if not cadre.id_number_masked or cadre.birth_date:
            fail(f"inspection was shown the id number or birth date of {cadre.name}")

        # 2. A dossier only for the briefing: any other purpose is refused, not answered as a missing cadre.
        try:
            dossiers.GetCadreDossier(
                dossier_pb2.GetCadreDossierRequest(cadre=cadre.name, purpose=dossier_pb2.PURPOSE_CASE_HANDLING),
                timeout=10, metadata=OFFICER,
            )
            fail("inspection read a dossier for case handling")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED or refusal_reason(e) != "ACTION_NOT_PERMITTED":
                raise
            print("refused:  ", e.code().name, refusal_reason(e), "(case handling is not a tour's purpose)")
        dossier = dossiers.GetCadreDossier(
            dossier_pb2.GetCadreDossierRequest(cadre=cadre.name, purpose=dossier_pb2.PURPOSE_PRE_INSPECTION_BRIEFING),
            timeout=10, metadata=OFFICER,
        )
        print("dossier:  ", dossier.cadre.display_name, "verdict", opinions_pb2.Verdict.Name(dossier.flags.verdict),
              "records", ", ".join(f"{records_pb2.RecordKind.Name(s.kind)[len('RECORD_KIND_'):]} {len(s.records)}"
                                   for s in dossier.sections if s.records))
        if dossier.cadre.id_number != masked:
            fail(f"the dossier shows the id number {dossier.cadre.id_number}")
        petitions = [r for s in dossier.sections for r in s.records if r.kind == records_pb2.RECORD_KIND_PETITION]
        if not petitions or any(r.WhichOneof("payload") != "petition_summary" for r in petitions):
            fail(f"expected the petition as a summary: {petitions}")
        # The whole answer, not only the petition: the informant's name is nowhere in it.
        if INFORMANT in text_format.MessageToString(dossier, as_utf8=True):
            fail("the informant's name reached the inspection tour")
        hidden = {records_pb2.RECORD_KIND_PERSONAL_MATTERS_CHECK, records_pb2.RECORD_KIND_ARCHIVE_REVIEW}
        if any(s.kind in hidden for s in dossier.sections):
            fail("inspection was shown personal-matters checks or archive reviews")

        # 3. What the tour found, reported once: the repeat returns the same record and revision.
        submit = records_pb2.SubmitRecordRequest(
            record=records_pb2.Record(
                cadre=cadre.name,
                source_record_id="XC-2026-01-901",
                source_version=1,
                classification=records_pb2.CLASSIFICATION_WORK_SECRET,
                inspection_finding=records_pb2.InspectionFinding(
                    tour_round="十五届县委第九轮巡察",
                    unit_name="吉安县交通运输局",
                    unit_credit_code=UNIT_CREDIT_CODE,
                    concerns_unit_head=True,
                    category=records_pb2.INSPECTION_CATEGORY_INTEGRITY,
                    summary="农村公路养护项目招标中存在廉洁风险，信访反映问题未查清",
                    transfer=records_pb2.TRANSFER_DISCIPLINE,
                    rectification=records_pb2.Rectification(
                        deadline="2026-09-30", status=records_pb2.RECTIFICATION_STATUS_IN_PROGRESS),
                    finding_date="2026-06-30",
                ),
            ),
            request_id="inspection-example-XC-2026-01-901-v1",
        )
        first = records.SubmitRecord(submit, timeout=10, metadata=OFFICER).record
        again = records.SubmitRecord(submit, timeout=10, metadata=OFFICER).record
        print("finding:  ", first.name, "revision", first.revision, "event date", first.event_date)
        if (again.name, again.revision) != (first.name, first.revision):
            fail(f"a repeated submit wrote again: {again.name} revision {again.revision}")


if __name__ == "__main__":
    main()
