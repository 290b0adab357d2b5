-- Placement: each repository lives on a few devices, its holders. The
-- write quorum is a majority of them; staging and convergence go to them
-- only; a request reaching another device is passed on to one of them.
-- An existing cluster kept every repository on every device: each of
-- those stays a holder until the repository is moved.
CREATE TABLE holders (
    repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    device_id     integer NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, device_id)
);
CREATE INDEX holders_device ON holders (device_id);
INSERT INTO holders (repository_id, device_id)
SELECT r.id, d.id FROM repositories r CROSS JOIN devices d;

-- A zone (a rack, a data centre): placement spreads a repository's
-- copies over zones first.
ALTER TABLE devices ADD COLUMN zone text NOT NULL DEFAULT '';

-- A move of one copy in progress (at most one per repository): the new
-- holder is added, caught up, then the old one removed. The row is the
-- move's whole state, so a killed mover's work is resumed by running the
-- same move again (or any move, drain or rebalance touching it).
CREATE TABLE moves (
    repository_id integer PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    from_device   integer REFERENCES devices(id) ON DELETE SET NULL,
    to_device     integer NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    step          text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Work on a device's disk that only that device can do: remove a copy it
-- no longer holds (a move, fewer copies, a deleted repository) or rename
-- one (a renamed repository). The device does it at once when asked, or
-- on its return (replicate's sweep, `gitmesh sync`, or a request that
-- meets the name); the row goes once it is done.
CREATE TABLE disk_tasks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  integer NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    action     text NOT NULL CHECK (action IN ('remove', 'rename')),
    name       text NOT NULL,
    new_name   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((action = 'rename') = (new_name IS NOT NULL))
);
CREATE INDEX disk_tasks_device ON disk_tasks (device_id, id);
