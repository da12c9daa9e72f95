-- Retention pruning finds the newest change older than the window; without
-- this index it scanned the whole outbox while holding the counter lock.
CREATE INDEX changes_commit_time ON changes (commit_time_us);
