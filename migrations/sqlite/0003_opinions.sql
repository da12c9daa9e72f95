-- Integrity-opinion requests, the cadres each asks about, and immutable replies.

CREATE TABLE opinion_requests (
    id                 TEXT PRIMARY KEY,
    requester          TEXT NOT NULL,
    requester_agency   TEXT NOT NULL,
    requester_division TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    due_date           TEXT NOT NULL,
    state              TEXT NOT NULL,
    note               TEXT NOT NULL,
    withdraw_reason    TEXT NOT NULL,
    warnings           TEXT NOT NULL,
    revision           BIGINT NOT NULL,
    create_time_us     BIGINT NOT NULL,
    update_time_us     BIGINT NOT NULL
);
CREATE INDEX opinion_requests_requester ON opinion_requests (requester_agency, requester_division, id);

CREATE TABLE opinion_request_cadres (
    request_id TEXT NOT NULL REFERENCES opinion_requests (id),
    cadre_id   TEXT NOT NULL REFERENCES cadres (id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (request_id, cadre_id)
);
CREATE INDEX opinion_request_cadres_cadre ON opinion_request_cadres (cadre_id);

CREATE TABLE opinion_replies (
    id                TEXT PRIMARY KEY,
    request_id        TEXT NOT NULL REFERENCES opinion_requests (id),
    cadre_id          TEXT NOT NULL REFERENCES cadres (id),
    verdict           TEXT NOT NULL,
    text              TEXT NOT NULL,
    cited_records     TEXT NOT NULL,
    signer            TEXT NOT NULL,
    as_of_us          BIGINT NOT NULL,
    correction_reason TEXT NOT NULL,
    corrects          TEXT NOT NULL,
    replier           TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    revision          BIGINT NOT NULL,
    create_time_us    BIGINT NOT NULL
);
CREATE INDEX opinion_replies_request ON opinion_replies (request_id, cadre_id, create_time_us);

CREATE INDEX records_cadre_kind_time ON records (cadre_id, kind, update_time_us);
