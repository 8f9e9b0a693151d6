"""The index: one SQLite file that keeps a workspace's chunks, BM25 statistics and vectors fresh.

    files    (path, mtime_ns, size, hash)             what was indexed, to notice changes
    chunks   (id, path, lines, kind, header, text, hash, terms)   terms: BM25 counts, JSON
    vectors  (hash -> float32 or float16 blob)        keyed by the chunk's content hash
    bm25     (name -> blob)                           the derived CSC matrix, rebuilt per run
    meta     (key -> value)                           schema, embedder, generation, complete

`update(root, db)` walks the workspace (.gitignore honoured), and for each file whose size or
mtime moved re-reads it: an unchanged content hash costs nothing more; a changed file has its
chunks replaced. Then every chunk whose hash has no vector is embedded -- an edit re-embeds
only the chunks whose text changed, and a moved or duplicated function reuses its vector.
Files gone from disk lose their chunks; vectors no chunk uses are dropped.

Design choices:
- Crash safety by transactions: one file's chunk replacement and its `files` row commit
  together, and embedded vectors commit batch by batch, so a run killed at any instant
  leaves a consistent index; the next run finds the rest still to do (`complete` = 0 in
  the meantime, and searches say the index is partial).
- WAL journal: searches read while an index run writes.
- The BM25 matrix is derived data, rebuilt from the stored term counts at the end of a run
  that changed something, and stored as a few blobs: a searcher loads it in one read. A
  `generation` counter tells a long-lived searcher (the agent's tool) to reload.
- The embedder is part of the index's identity: its fingerprint is stored, and an index is
  never mixed with vectors from another model (clear error, or `--rebuild`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from groundup.errors import UserError
from groundup.gitignore import walk_files
from groundup.rag.bm25 import BM25, tokenize
from groundup.rag.chunking import Skipped, chunk_text, read_text_file

SCHEMA_VERSION = 1
DEFAULT_DB = Path(".groundup") / "index.db"
COMMIT_EVERY_FILES = 200
EMBED_GROUP = 256                  # chunks embedded (and committed) together

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER,
                                  hash TEXT);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, path TEXT NOT NULL,
                                   start_line INTEGER, end_line INTEGER, kind TEXT,
                                   header TEXT, text TEXT, hash TEXT, terms TEXT);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vec BLOB);
CREATE TABLE IF NOT EXISTS bm25 (name TEXT PRIMARY KEY, value BLOB);
"""


@dataclass
class UpdateStats:
    files_seen: int = 0
    files_changed: int = 0
    files_deleted: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)    # reason -> count
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def connect(db: str | Path, create: bool = False) -> sqlite3.Connection:
    db = Path(db)
    if not db.exists() and not create:
        raise UserError(f"no index at {db} -- run `groundup index` in the workspace first")
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(db), timeout=30.0)
    try:   # the first statement is where a file that is not a database says so
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")     # WAL + NORMAL: a crash loses no committed data
        con.executescript(SCHEMA) if create else None
        version = get_meta(con, "schema")
    except sqlite3.DatabaseError as e:
        raise UserError(f"{db} is not a groundup index ({e}); delete it and run "
                        "`groundup index` again") from None
    if version is None and create:
        set_meta(con, schema=str(SCHEMA_VERSION), generation="0", complete="0")
        con.commit()
    elif version != str(SCHEMA_VERSION):
        raise UserError(f"{db} is an index of another version ({version}); rebuild it with "
                        "`groundup index --rebuild`")
    return con


def get_meta(con: sqlite3.Connection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(con: sqlite3.Connection, **values: str) -> None:
    con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())


def file_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def check_embedder(con: sqlite3.Connection, embedder, db: Path) -> None:
    """Refuse to mix vectors of two models in one index."""
    stored = get_meta(con, "embedder_fingerprint")
    have = embedder.fingerprint if embedder is not None else "none"
    if stored is not None and stored != have:
        name = get_meta(con, "embedder_name")
        raise UserError(f"{db} was built with embedder {name!r}; this run uses "
                        f"{embedder.name if embedder else 'none'!r} -- use the same --embedder, "
                        "or rebuild with `groundup index --rebuild`")


def update(root: str | Path, db: str | Path, embedder=None, *, vector_dtype: str = "float32",
           rebuild: bool = False,
           progress: Callable[[str, int, int], None] | None = None) -> UpdateStats:
    """Bring the index at `db` up to date with the files under `root`.

    `embedder` None builds a BM25-only index; `progress(phase, done, total)` is called as
    files are read ("files") and chunks embedded ("embed")."""
    t0 = time.perf_counter()
    root, db = Path(root).resolve(), Path(db)
    if vector_dtype not in ("float32", "float16"):
        raise UserError(f"vector dtype {vector_dtype!r}: use float32 or float16")
    if rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    con = connect(db, create=True)
    stats = UpdateStats()
    try:
        check_embedder(con, embedder, db)
        # a run killed before its end may have changed chunks without rebuilding BM25
        was_complete = get_meta(con, "complete") == "1"
        old_dtype = get_meta(con, "vector_dtype")
        if old_dtype and old_dtype != vector_dtype and con.execute(
                "SELECT 1 FROM vectors LIMIT 1").fetchone():
            raise UserError(f"{db} stores {old_dtype} vectors; rebuild with "
                            f"`groundup index --rebuild` to change to {vector_dtype}")
        set_meta(con, root=str(root), complete="0", vector_dtype=vector_dtype,
                 embedder_fingerprint=embedder.fingerprint if embedder else "none",
                 embedder_name=embedder.name if embedder else "none",
                 embedder_path=str(embedder.path) if embedder else "",
                 embedder_dim=str(embedder.dim) if embedder else "0")
        con.commit()
        changed = _sync_files(con, root, db, stats, progress)
        if embedder is not None:
            _embed_missing(con, embedder, vector_dtype, stats, progress)
        if changed or not was_complete:
            _rebuild_bm25(con)
        con.execute("DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM chunks)")
        fresh = changed or stats.chunks_embedded or not was_complete
        gen = int(get_meta(con, "generation") or 0) + (1 if fresh else 0)
        set_meta(con, complete="1", generation=str(gen))
        con.commit()
    finally:
        con.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _sync_files(con, root: Path, db: Path, stats: UpdateStats, progress) -> bool:
    known = {p: (m, s, h) for p, m, s, h in con.execute(
        "SELECT path, mtime_ns, size, hash FROM files")}
    try:
        db_rel = db.resolve().relative_to(root).as_posix()
    except ValueError:
        db_rel = None                                  # the index lives outside the workspace
    own = {db_rel + s for s in ("", "-wal", "-shm", "-journal")} if db_rel else set()
    paths = [p for p in walk_files(root, root) if not p.startswith(".groundup/") and p not in own]
    stats.files_seen = len(paths)
    changed, pending = False, 0
    for n, rel in enumerate(paths, 1):
        if progress and (n % 50 == 0 or n == len(paths)):
            progress("files", n, len(paths))
        f = root / rel
        try:
            st = f.stat()
        except OSError:
            stats.skipped["unreadable"] = stats.skipped.get("unreadable", 0) + 1
            continue
        old = known.get(rel)
        if old and old[0] == st.st_mtime_ns and old[1] == st.st_size:
            continue                                   # untouched since the last run
        try:
            text = read_text_file(f)
        except Skipped as e:
            reason = str(e).split(":")[0]
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
            if old:                                    # it was indexed; now it cannot be
                _drop_file(con, rel, stats)
                changed = True
            known.pop(rel, None)
            continue
        h = file_hash(text)
        if old and old[2] == h:                        # touched, same content
            con.execute("UPDATE files SET mtime_ns=?, size=? WHERE path=?",
                        (st.st_mtime_ns, st.st_size, rel))
        else:
            _replace_file(con, rel, text, stats)
            con.execute("INSERT OR REPLACE INTO files (path, mtime_ns, size, hash) "
                        "VALUES (?, ?, ?, ?)", (rel, st.st_mtime_ns, st.st_size, h))
            stats.files_changed += 1
            changed = True
        pending += 1
        if pending >= COMMIT_EVERY_FILES:
            con.commit()                               # a file's chunks and row go together
            pending = 0
    seen = set(paths)
    for rel in [p for p in known if p not in seen]:
        _drop_file(con, rel, stats)
        stats.files_deleted += 1
        changed = True
    con.commit()
    return changed


def _drop_file(con, rel: str, stats: UpdateStats) -> None:
    stats.chunks_removed += con.execute("DELETE FROM chunks WHERE path = ?", (rel,)).rowcount
    con.execute("DELETE FROM files WHERE path = ?", (rel,))


def _replace_file(con, rel: str, text: str, stats: UpdateStats) -> None:
    stats.chunks_removed += con.execute("DELETE FROM chunks WHERE path = ?", (rel,)).rowcount
    rows = []
    for c in chunk_text(rel, text):
        terms = Counter(tokenize(c.indexed_text))
        rows.append((c.path, c.start_line, c.end_line, c.kind, c.header, c.text, c.hash,
                     json.dumps(terms, ensure_ascii=False, separators=(",", ":"))))
    con.executemany("INSERT INTO chunks (path, start_line, end_line, kind, header, text, hash, "
                    "terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    stats.chunks_added += len(rows)


def _embed_missing(con, embedder, vector_dtype: str, stats: UpdateStats, progress) -> None:
    todo = con.execute("SELECT hash, MIN(header), MIN(text) FROM chunks WHERE hash NOT IN "
                       "(SELECT hash FROM vectors) GROUP BY hash ORDER BY MIN(id)").fetchall()
    dtype = np.float16 if vector_dtype == "float16" else np.float32
    for s in range(0, len(todo), EMBED_GROUP):
        group = todo[s:s + EMBED_GROUP]
        vecs = embedder.embed([f"{header}\n{text}" for _, header, text in group])
        con.executemany("INSERT OR REPLACE INTO vectors (hash, vec) VALUES (?, ?)",
                        [(h, v.astype(dtype).tobytes()) for (h, _, _), v in zip(group, vecs)])
        con.commit()                                   # a kill loses at most this group
        stats.chunks_embedded += len(group)
        if progress:
            progress("embed", min(s + EMBED_GROUP, len(todo)), len(todo))


def _rebuild_bm25(con) -> None:
    ids, counts = [], []
    for cid, terms in con.execute("SELECT id, terms FROM chunks ORDER BY id"):
        ids.append(cid)
        counts.append(json.loads(terms))
    bm = BM25.from_counts(counts)
    blobs = {"vocab": json.dumps(list(bm.vocab), ensure_ascii=False).encode("utf-8"),
             "indptr": bm.indptr.tobytes(), "doc_ids": bm.doc_ids.tobytes(),
             "tfs": bm.tfs.tobytes(), "doc_len": bm.doc_len.tobytes(),
             "chunk_ids": np.asarray(ids, dtype=np.int64).tobytes()}
    con.executemany("INSERT OR REPLACE INTO bm25 (name, value) VALUES (?, ?)", blobs.items())


def load_bm25(con) -> tuple[BM25, np.ndarray]:
    """The stored BM25 matrix and the chunk id of each of its documents."""
    blobs = dict(con.execute("SELECT name, value FROM bm25"))
    if "vocab" not in blobs:
        raise UserError("the index has no BM25 statistics yet -- run `groundup index` again")
    vocab = {t: i for i, t in enumerate(json.loads(blobs["vocab"].decode("utf-8")))}
    bm = BM25(vocab, np.frombuffer(blobs["indptr"], dtype=np.int64),
              np.frombuffer(blobs["doc_ids"], dtype=np.int32),
              np.frombuffer(blobs["tfs"], dtype=np.float32),
              np.frombuffer(blobs["doc_len"], dtype=np.float32))
    return bm, np.frombuffer(blobs["chunk_ids"], dtype=np.int64)
