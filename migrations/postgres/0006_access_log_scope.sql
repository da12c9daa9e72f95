-- "Who read in this jurisdiction": a discipline system below 000000 reads the
-- rows about cadres in its jurisdiction, found from each row's seq. Seqs only grow,
-- so this index appends at its right edge instead of writing at random keys.
CREATE INDEX access_log_cadres_seq ON access_log_cadres (seq);
