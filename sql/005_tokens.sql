-- HTTP tokens: `gitmesh token add USER` prints a random 32-byte token once;
-- only its sha256 is kept. A plain hash, not bcrypt: a token is 256 random
-- bits, so no guess can be checked against a leaked hash faster than
-- brute force of the whole space, and `gitmesh http-auth` runs once per
-- HTTP request, where a slow hash would cost every fetch.
CREATE TABLE tokens (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash       bytea NOT NULL UNIQUE,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used  timestamptz
);
CREATE INDEX tokens_user ON tokens (user_id);
