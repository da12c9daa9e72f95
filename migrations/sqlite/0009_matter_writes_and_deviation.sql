-- A reply is stale as soon as a matter record about its cadre is written or
-- retracted after its as-of time (DESIGN §6). A write counts when the record is
-- a matter before or after it, which only the writer can tell (a personal-matters
-- check is a matter unless CONSISTENT), so the time of the last such write is kept
-- per cadre and updated in the write's own transaction.
ALTER TABLE cadres ADD COLUMN last_matter_write_us BIGINT;

-- Existing stores: the last write of any record of a kind that can be a matter,
-- which is what staleness counted before this migration, so no reply in force
-- becomes fresh by upgrading.
UPDATE cadres SET last_matter_write_us = (
    SELECT MAX(r.update_time_us) FROM records r
    WHERE r.cadre_id = cadres.id
      AND r.kind IN ('SANCTION', 'ADMONISHMENT', 'CLUE', 'ORG_HANDLING', 'AUDIT_FINDING',
                     'PETITION', 'PERSONAL_MATTERS_CHECK')
);

-- A reply kinder than the rules is explained (DESIGN §6): the draft verdict the
-- server computed when the reply was given, and the replier's reason for
-- departing from it (empty when the reply is not kinder). Replies given before
-- this migration have no recorded draft ('').
ALTER TABLE opinion_replies ADD COLUMN draft_verdict TEXT NOT NULL DEFAULT '';
ALTER TABLE opinion_replies ADD COLUMN deviation_reason TEXT NOT NULL DEFAULT '';
