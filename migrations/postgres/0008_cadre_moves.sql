-- A cadre that changes managing division changes who sees it (DESIGN §5, §6).
--
-- The move writes one change row per affected resource (the cadre, each of its
-- records, each opinion request naming it) with the division it left in
-- from_division; NULL on every other row. Each caller's feed derives from such
-- a row, when read, an OUT_OF_VIEW or an UPSERT (or nothing), so the move is
-- stored once rather than once per caller.
ALTER TABLE changes ADD COLUMN from_division TEXT;

-- Every move, kept for good: change rows are pruned by retention, but a
-- reply's staleness shown to a body the cadre left is fixed as at the move,
-- which needs the cadre's last matter-write time at that moment.
CREATE TABLE cadre_moves (
    cadre_id             TEXT NOT NULL REFERENCES cadres (id),
    seq                  BIGINT NOT NULL,
    from_division        TEXT NOT NULL,
    to_division          TEXT NOT NULL,
    move_time_us         BIGINT NOT NULL,
    last_matter_write_us BIGINT,
    PRIMARY KEY (cadre_id, seq)
);
