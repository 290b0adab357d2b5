-- Devices, repositories and which version of each repository each device holds.
CREATE TABLE devices (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    url        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE working_copy_versions (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id    integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    device_id        integer NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    version          bigint NOT NULL,
    is_writing       boolean NOT NULL DEFAULT false,
    -- who writes: user, device, pid, backend_pid, started, token
    write_properties jsonb,
    refs_digest      text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, device_id)
);

-- Access control: users, groups, keys and grants (deny by default).
CREATE TABLE users (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE group_members (
    group_id integer NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE ssh_keys (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     integer REFERENCES users(id) ON DELETE CASCADE,
    -- NULL user_id: the cluster's own key
    key_type    text NOT NULL,
    key_blob    text NOT NULL UNIQUE,
    comment     text NOT NULL DEFAULT '',
    fingerprint text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- level: 1 read, 2 write, 3 admin. pattern is a name or a glob ("team/*");
-- regex is the anchored regular expression gitmesh derived from it.
CREATE TABLE grants (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    integer REFERENCES users(id) ON DELETE CASCADE,
    group_id   integer REFERENCES groups(id) ON DELETE CASCADE,
    pattern    text NOT NULL,
    regex      text NOT NULL,
    level      smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX grants_user_pattern ON grants (user_id, pattern) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX grants_group_pattern ON grants (group_id, pattern) WHERE group_id IS NOT NULL;
CREATE INDEX grants_group ON grants (group_id);

-- Replication history: every fetch from a peer.
CREATE TABLE sync_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    device_id     integer NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    from_device   integer REFERENCES devices(id) ON DELETE SET NULL,
    from_version  bigint,
    to_version    bigint,
    duration_ms   bigint NOT NULL,
    result        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_log_repo ON sync_log (repository_id, created_at);

-- One row per accepted ref update.
CREATE TABLE push_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    device_id     integer REFERENCES devices(id) ON DELETE SET NULL,
    user_name     text NOT NULL,
    ref           text NOT NULL,
    old_value     text NOT NULL,
    new_value     text NOT NULL,
    version       bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_log_repo ON push_log (repository_id, created_at);
