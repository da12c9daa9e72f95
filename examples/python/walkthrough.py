#!/usr/bin/env python3
"""A county organization department's system working with cadrex: register a cadre, submit a record,
read a refusal's google.rpc details, and pull the change feed.

Usage: walkthrough.py HOST:PORT PKI_DIR

It calls as the development system `organization-360821` (PKI_DIR/clients/organization-360821.*).
Re-running it against the same server is safe: the cadre is registered once per 公民身份号码, the
record is keyed by (system, source_record_id, source_version), and each write carries a request_id
(AIP-155), so a retry returns the first answer instead of writing twice.
Needs: pip install grpcio grpcio-tools grpcio-status
"""
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from cadrex_example import OFFICER, channel, credit_code, fail, id_number, load_stubs

WHO = "organization-360821"
ID_NUMBER = id_number("36082119800715003")  # the odd 17th digit: a man
UNIT_CREDIT_CODE = credit_code("11360821MB1234567")  # 吉安县交通运输局, where he is the unit head


def register_cadre(cadres, cadres_pb2):
    """CreateCadre, or the cadre already registered under this 公民身份号码."""
    cadre = cadres_pb2.Cadre(
        display_name="李四",
        gender=cadres_pb2.GENDER_MALE,
        id_number=ID_NUMBER,
        managing_division="360821",
        posts=[
            cadres_pb2.Post(
                unit_name="吉安县交通运输局", unit_credit_code=UNIT_CREDIT_CODE,
                title="局长", rank="正科级", unit_head=True, start_date="2022-06-01",
            )
        ],
    )
    try:
        return cadres.CreateCadre(
            cadres_pb2.CreateCadreRequest(cadre=cadre, request_id=f"walkthrough-cadre-{ID_NUMBER}"),
            timeout=10, metadata=OFFICER,
        )
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return cadres.LookupCadre(cadres_pb2.LookupCadreRequest(id_number=ID_NUMBER), timeout=10, metadata=OFFICER)


def evaluation(records_pb2, **fields):
    """An annual review (年度考核) of the cadre, keyed in the organization's own system as KH-2025-0001."""
    return records_pb2.Record(
        cadre_id_number=ID_NUMBER,
        source_record_id="KH-2025-0001",
        source_version=1,
        classification=records_pb2.CLASSIFICATION_INTERNAL,
        evaluation=records_pb2.Evaluation(**fields),
    )


def explain(e):
    """The google.rpc details of a refusal: what an integrator logs and shows its users."""
    status = rpc_status.from_call(e)
    if status is None:
        fail(f"{e.code().name} without google.rpc details: {e.details()}")
    found = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.LocalizedMessage):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.__name__] = message
    print("refused:  ", e.code().name, "-", status.message)
    if "ErrorInfo" in found:
        info = found["ErrorInfo"]
        print("  reason: ", info.reason, "domain", info.domain)
    for v in found.get("BadRequest", error_details_pb2.BadRequest()).field_violations:
        print("  field:  ", v.field, "-", v.description)
    if "LocalizedMessage" in found:
        print("  message:", found["LocalizedMessage"].locale, found["LocalizedMessage"].message)
    return found


def main():
    if len(sys.argv) != 3:
        fail(__doc__.strip())
    target, pki = sys.argv[1], sys.argv[2]
    load_stubs()
    from cadrex.v1 import cadres_pb2, cadres_pb2_grpc, changes_pb2, changes_pb2_grpc, records_pb2, records_pb2_grpc

    with channel(target, pki, WHO) as ch:
        cadres = cadres_pb2_grpc.CadreServiceStub(ch)
        records = records_pb2_grpc.RecordServiceStub(ch)
        feed = changes_pb2_grpc.ChangeFeedServiceStub(ch)

        # 1. The cadre, by the number every system holds.
        cadre = register_cadre(cadres, cadres_pb2)
        print("cadre:    ", cadre.name, cadre.display_name)

        # 2. A record, submitted twice: the second answer is the first one (same revision).
        submit = records_pb2.SubmitRecordRequest(
            record=evaluation(records_pb2, year=2025, kind=records_pb2.EVALUATION_KIND_ANNUAL_REVIEW,
                              grade=records_pb2.EVALUATION_GRADE_EXCELLENT),
            request_id="walkthrough-KH-2025-0001-v1",
        )
        first = records.SubmitRecord(submit, timeout=10, metadata=OFFICER).record
        again = records.SubmitRecord(submit, timeout=10, metadata=OFFICER).record
        print("record:   ", first.name, "revision", first.revision, "event date", first.event_date)
        if (again.name, again.revision) != (first.name, first.revision):
            fail(f"a repeated submit wrote again: {again.name} revision {again.revision}")

        # 3. A record the exchange refuses: no grade, no kind. Nothing is stored; the details say why.
        bad = records_pb2.SubmitRecordRequest(
            record=evaluation(records_pb2, year=2025), request_id="walkthrough-KH-2025-0001-bad"
        )
        try:
            records.SubmitRecord(bad, timeout=10, metadata=OFFICER)
            fail("an evaluation without grade and kind was accepted")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            found = explain(e)
        fields = [v.field for v in found["BadRequest"].field_violations]
        if found["ErrorInfo"].domain != "cadrex" or not any(f.startswith("record.evaluation.") for f in fields):
            fail(f"unexpected details: {found}")
        if found["LocalizedMessage"].locale != "zh-CN" or fields[0] not in found["LocalizedMessage"].message:
            fail(f"the zh-CN message does not name {fields[0]}: {found['LocalizedMessage']}")

        # 4. The change feed: every page from the oldest retained change; keep the cursor to resume.
        cursor, mine = "", []
        while True:
            page = feed.ListChanges(changes_pb2.ListChangesRequest(after_cursor=cursor), timeout=10, metadata=OFFICER)
            mine += [e for e in page.events if e.resource in (cadre.name, first.name)]
            if page.next_cursor == cursor:
                break
            cursor = page.next_cursor
        for e in mine:
            print("change:   ", e.seq, changes_pb2.ChangeOp.Name(e.op), changes_pb2.ChangeKind.Name(e.kind),
                  e.resource, "revision", e.revision)
        if not any(e.resource == first.name and e.revision == first.revision for e in mine):
            fail("the submitted record is missing from the feed")
        print("cursor:   ", cursor[:16] + "…", "(store it with what you applied; resume after it)")


if __name__ == "__main__":
    main()
