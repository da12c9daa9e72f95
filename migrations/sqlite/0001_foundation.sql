-- Foundation schema: store identity, cadre registry, idempotency keys, outbox, hash-chained access log.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE cadres (
    id                TEXT PRIMARY KEY,
    id_number         TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    gender            INTEGER NOT NULL,
    birth_date        TEXT NOT NULL,
    managing_division TEXT NOT NULL,
    posts             TEXT NOT NULL,
    revision          BIGINT NOT NULL,
    create_time_us    BIGINT NOT NULL,
    update_time_us    BIGINT NOT NULL
);
CREATE INDEX cadres_division ON cadres (managing_division, id);

CREATE TABLE request_ids (
    system         TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    method         TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    response       BLOB NOT NULL,
    create_time_us BIGINT NOT NULL,
    PRIMARY KEY (system, request_id)
);

CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq            INTEGER PRIMARY KEY,
    op             TEXT NOT NULL,
    resource       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    revision       BIGINT NOT NULL,
    division       TEXT NOT NULL,
    commit_time_us BIGINT NOT NULL
);

CREATE TABLE access_log_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO access_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE access_log (
    seq             INTEGER PRIMARY KEY,
    time_us         BIGINT NOT NULL,
    principal       TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    officer         TEXT NOT NULL,
    method          TEXT NOT NULL,
    resources       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    decision        TEXT NOT NULL,
    policy_ids      TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    status_code     INTEGER NOT NULL,
    response_sha256 TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX access_log_principal ON access_log (principal, seq);
CREATE INDEX access_log_time ON access_log (time_us);

-- One row per (log row, cadre it touched), so "who read this cadre" is an index lookup.
CREATE TABLE access_log_cadres (
    cadre TEXT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (cadre, seq)
);

CREATE TABLE log_checkpoints (
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    time_us   BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (seq, key_id)
);
