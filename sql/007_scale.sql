-- check's lagging copies: the first version a lagging copy lacks is
-- found by repository and version, not by reading the repository's whole
-- push history (push_log_repo orders it by time).
CREATE INDEX push_log_version ON push_log (repository_id, version);
