-- One row per push attempt, whatever its outcome, for `gitmesh metrics`:
-- how long it took, how long it waited for the write lock, and how it
-- ended ('ok' when a version was recorded; see version/attempt.go).
CREATE TABLE push_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    device_id     integer REFERENCES devices(id) ON DELETE SET NULL,
    user_name     text NOT NULL,
    duration_ms   bigint NOT NULL,
    lock_wait_ms  bigint NOT NULL,
    result        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_attempts_device ON push_attempts (device_id, created_at);

-- `gitmesh sync-log` reads newest first, of every repository or of one
-- device; sync_log_repo serves one repository.
CREATE INDEX sync_log_time ON sync_log (created_at, id);
CREATE INDEX sync_log_device ON sync_log (device_id, created_at);
