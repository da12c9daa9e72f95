-- The request_id replay cache of record submissions used to keep the whole
-- response, a petition's informant block included, in plaintext. It now keeps
-- only which records each item wrote (re-rendered on replay), so the old rows
-- go: a retry with one of their ids is simply applied again, which the
-- (owner system, source_record_id, source_version) idempotency answers with
-- the stored record. (Dead tuples keep the old bytes until VACUUM, which cannot
-- run inside a migration's transaction: run VACUUM request_ids after upgrading.)
DELETE FROM request_ids
WHERE method IN ('/cadrex.v1.RecordService/SubmitRecord',
                 '/cadrex.v1.RecordService/BatchSubmitRecords');
