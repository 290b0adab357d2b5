-- A copy whose refs_pending is set holds its version staged on disk
-- (refs/gitmesh/stage/) while its visible refs still show an older one;
-- a read there shows the staged refs before it serves.
ALTER TABLE working_copy_versions ADD COLUMN refs_pending boolean NOT NULL DEFAULT false;
