-- The request_id replay cache of record submissions used to keep the whole
-- response, a petition's informant block included, in plaintext. It now keeps
-- only which records each item wrote (re-rendered on replay), so the old rows
-- go: a retry with one of their ids is simply applied again, which the
-- (owner system, source_record_id, source_version) idempotency answers with
-- the stored record.
-- secure_delete overwrites the freed cells, so the old plaintext does not stay
-- readable in free pages of the database file.
PRAGMA secure_delete = ON;
DELETE FROM request_ids
WHERE method IN ('/cadrex.v1.RecordService/SubmitRecord',
                 '/cadrex.v1.RecordService/BatchSubmitRecords');
PRAGMA secure_delete = OFF;
