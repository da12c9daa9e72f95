-- Records: typed facts about cadres, their accepted source versions, and encrypted informant blocks.

CREATE TABLE records (
    id                TEXT PRIMARY KEY,
    cadre_id          TEXT NOT NULL REFERENCES cadres (id),
    kind              TEXT NOT NULL,
    owner_system      TEXT NOT NULL,
    owner_agency      TEXT NOT NULL,
    owner_division    TEXT NOT NULL,
    source_record_id  TEXT NOT NULL,
    source_version    BIGINT NOT NULL,
    revision          BIGINT NOT NULL,
    event_date        TEXT NOT NULL,
    classification    TEXT NOT NULL,
    state             TEXT NOT NULL,
    retraction_reason TEXT NOT NULL,
    payload           BLOB NOT NULL,
    payload_sha256    TEXT NOT NULL,
    informant_key_id  TEXT,
    informant_nonce   BLOB,
    informant_data    BLOB,
    transfer_agency   TEXT NOT NULL,
    transfer_division TEXT NOT NULL,
    submitting_system TEXT NOT NULL,
    update_time_us    BIGINT NOT NULL,
    UNIQUE (owner_system, source_record_id)
);
CREATE INDEX records_cadre ON records (cadre_id, id);
CREATE INDEX records_revision ON records (revision);

-- Every accepted (owner system, source record, version) with its content digest:
-- the database, not a read-then-insert, makes a version unique.
CREATE TABLE record_versions (
    owner_system     TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    source_version   BIGINT NOT NULL,
    payload_sha256   TEXT NOT NULL,
    PRIMARY KEY (owner_system, source_record_id, source_version)
);
