-- Fewer b-trees per written record, measured with `cadrex bench --only ingest`:
-- every tree a batch touches at random keys is pages written twice (WAL, then
-- checkpoint).
--
-- records_cadre_kind_time duplicated records_cadre for one query
-- (last_matter_write_us), which reads a single cadre's few records either way.
DROP INDEX records_cadre_kind_time;

-- Tables whose whole row is their key: WITHOUT ROWID keeps one tree instead of
-- a rowid table plus a unique index holding the same columns.
CREATE TABLE record_versions_new (
    owner_system     TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    source_version   BIGINT NOT NULL,
    payload_sha256   TEXT NOT NULL,
    PRIMARY KEY (owner_system, source_record_id, source_version)
) WITHOUT ROWID;
INSERT INTO record_versions_new (owner_system, source_record_id, source_version, payload_sha256)
SELECT owner_system, source_record_id, source_version, payload_sha256 FROM record_versions;
DROP TABLE record_versions;
ALTER TABLE record_versions_new RENAME TO record_versions;

CREATE TABLE access_log_cadres_new (
    cadre TEXT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (cadre, seq)
) WITHOUT ROWID;
INSERT INTO access_log_cadres_new (cadre, seq) SELECT cadre, seq FROM access_log_cadres;
DROP TABLE access_log_cadres;
ALTER TABLE access_log_cadres_new RENAME TO access_log_cadres;
