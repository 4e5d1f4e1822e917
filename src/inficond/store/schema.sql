-- InFiConD workspace schema. Arrays live next to this file under arrays/.
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL                       -- JSON
);
CREATE TABLE IF NOT EXISTS classes (
  idx      INTEGER PRIMARY KEY,             -- column in labels / teacher logits
  name     TEXT NOT NULL UNIQUE,
  excluded INTEGER NOT NULL DEFAULT 0,      -- 1 = too few positives for mean metrics
  reason   TEXT
);
CREATE TABLE IF NOT EXISTS images (
  idx      INTEGER PRIMARY KEY,             -- row in every per-image array
  image_id TEXT NOT NULL UNIQUE,
  path     TEXT NOT NULL,
  split    TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
  labels   TEXT NOT NULL,                   -- '0101...' one char per class
  status   TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'corrupt')),
  error    TEXT
);
CREATE TABLE IF NOT EXISTS concepts (
  idx    INTEGER PRIMARY KEY,               -- column in concept_vectors
  word   TEXT NOT NULL UNIQUE COLLATE NOCASE, -- one rule with inficond.store.workspace.concept_key
  prompt TEXT,                              -- text actually encoded, e.g. 'a photo of a {word}'
  source TEXT NOT NULL DEFAULT 'default'    -- default | user file name | ui
);
-- Workspaces made before the column had COLLATE NOCASE get the same rule from this index.
CREATE UNIQUE INDEX IF NOT EXISTS concepts_word_nocase ON concepts(word COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS patches (
  concept_idx INTEGER NOT NULL REFERENCES concepts(idx),
  rank        INTEGER NOT NULL,
  image_idx   INTEGER NOT NULL REFERENCES images(idx),
  region      INTEGER NOT NULL,
  similarity  REAL NOT NULL,
  box         TEXT NOT NULL,                -- JSON [x0, y0, x1, y1], fractions of width/height
  file        TEXT NOT NULL,                -- relative to the workspace folder
  PRIMARY KEY (concept_idx, rank)
);
CREATE TABLE IF NOT EXISTS segments (
  image_idx   INTEGER NOT NULL REFERENCES images(idx),
  segment     INTEGER NOT NULL,
  concept_idx INTEGER NOT NULL REFERENCES concepts(idx),
  similarity  REAL NOT NULL,
  box         TEXT NOT NULL,
  PRIMARY KEY (image_idx, segment)
);
