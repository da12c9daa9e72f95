-- Fewer index trees per written record, measured with `cadrex bench --only ingest`.
-- records_cadre_kind_time duplicated records_cadre for one query
-- (last_matter_write_us), which reads a single cadre's few records either way.
-- (The SQLite pair also rebuilds two key-only tables WITHOUT ROWID; PostgreSQL
-- has no such layout, so there is nothing to change for them here.)
DROP INDEX records_cadre_kind_time;
