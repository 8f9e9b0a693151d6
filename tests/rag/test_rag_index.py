"""The SQLite index: incremental, crash-safe, honest about what it cannot use.

A tiny random-weight BERT (conftest.py) does the embedding: fast, and a real model directory."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from groundup.errors import UserError
from groundup.rag.encoder import Embedder
from groundup.rag.index import update
from groundup.rag.search import Searcher


def _module(n: int) -> str:
    return "\n\n".join(f"def func_{n}_{i}(x):\n    \"\"\"Compute value {i} of module {n}.\"\"\"\n"
                       f"    return x * {i} + {n}\n" for i in range(5))


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "net.py").write_text(
        "def fetch_page(url):\n    \"\"\"Download a web page over HTTP.\"\"\"\n    return url\n\n\n"
        "def retry(fn, times=3):\n    \"\"\"Call fn again when it fails.\"\"\"\n    return fn()\n")
    (root / "pkg" / "store.py").write_text(
        "class Cache:\n    def get(self, key):\n        return self.data[key]\n\n"
        "    def put(self, key, value):\n        self.data[key] = value\n")
    (root / "README.md").write_text("# Demo\n\nA demo workspace.\n\n## Usage\n\nImport pkg.\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir()
    (root / "build" / "junk.py").write_text("def ignored_function():\n    pass\n")
    (root / "logo.png").write_bytes(b"\x89PNG\x00\x00binary")
    return root


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    return Embedder(tiny_bert_dir)


def _state(db: Path):
    con = sqlite3.connect(db)
    chunks = sorted(con.execute("SELECT path, start_line, end_line, hash, terms FROM chunks"))
    vectors = dict(con.execute("SELECT hash, vec FROM vectors"))
    files = sorted(con.execute("SELECT path, size, hash FROM files"))
    meta = dict(con.execute("SELECT key, value FROM meta"))
    con.close()
    return chunks, vectors, files, meta


def test_incremental_update_reembeds_only_changed_chunks(workspace, tiny):
    db = workspace / ".groundup" / "index.db"
    first = update(workspace, db, tiny)
    assert first.files_seen == 5 and first.skipped == {"binary": 1}   # build/ ignored
    assert first.files_changed == 4                                    # .gitignore is text too
    assert first.chunks_embedded == first.chunks_added > 0
    assert update(workspace, db, tiny).chunks_embedded == 0           # nothing changed
    net = workspace / "pkg" / "net.py"
    net.write_text(net.read_text().replace("times=3", "times=5"))     # one function edited
    second = update(workspace, db, tiny)
    assert second.files_changed == 1 and second.chunks_embedded == 1
    s = Searcher(db)
    hits = s.search("call again when it fails", k=1, mode="bm25")
    assert hits[0].path == "pkg/net.py" and "times=5" in hits[0].text
    (workspace / "pkg" / "store.py").unlink()                           # deleted file
    third = update(workspace, db, tiny)
    assert third.files_deleted == 1
    for mode in ("bm25", "dense", "hybrid"):
        assert all(r.path != "pkg/store.py" for r in s.search("cache get put key", k=20, mode=mode))
    _, vectors, _, _ = _state(db)
    con = sqlite3.connect(db)
    assert len(vectors) == con.execute("SELECT COUNT(DISTINCT hash) FROM chunks").fetchone()[0]


def test_sigkill_mid_index_then_rerun_equals_clean_run(tmp_path, tiny_bert_dir):
    root = tmp_path / "big"
    root.mkdir()
    for n in range(200):
        (root / f"mod_{n:03d}.py").write_text(_module(n))
    db = root / ".groundup" / "index.db"
    cmd = [sys.executable, "-m", "groundup", "index", str(root), "--embedder", str(tiny_bert_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_mid = False
    while time.time() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            n = con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            con.close()
        except sqlite3.Error:
            n = 0
        if n > 0:
            proc.send_signal(signal.SIGKILL)
            killed_mid = True
            break
        time.sleep(0.01)
    proc.wait()
    assert killed_mid, "the indexing run ended before it could be killed"
    assert _state(db)[3]["complete"] == "0"
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    clean_db = tmp_path / "clean.db"
    update(root, clean_db, Embedder(tiny_bert_dir))
    a, b = _state(db), _state(clean_db)
    assert a[0] == b[0] and a[2] == b[2] and a[3]["complete"] == b[3]["complete"] == "1"
    assert a[1].keys() == b[1].keys()
    for h in a[1]:   # same vectors, whichever run made them (batches differ: float noise only)
        assert np.allclose(np.frombuffer(a[1][h], np.float32), np.frombuffer(b[1][h], np.float32),
                           atol=1e-5)
    q = "compute value 3 of module 120"
    assert [r.source for r in Searcher(db).search(q, k=5)] == \
        [r.source for r in Searcher(clean_db).search(q, k=5)]


def test_other_embedder_is_refused(workspace, tiny, minilm_dir):
    db = workspace / ".groundup" / "index.db"
    update(workspace, db, tiny)
    with pytest.raises(UserError, match="built with embedder"):
        update(workspace, db, None)
    with pytest.raises(UserError, match="built with embedder"):
        Searcher(db, embedder=str(minilm_dir)).search("x", mode="dense")


def test_unreadable_file_is_skipped_and_counted(workspace, monkeypatch):
    # as root every file is readable, so the OS refusal is made by patching pathlib itself
    secret = workspace / "secret.py"
    secret.write_text("x = 1\n")
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "secret.py":
            raise PermissionError(13, "Permission denied")
        return real(self)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    stats = update(workspace, workspace / "i.db", None)
    assert stats.skipped == {"binary": 1, "unreadable": 1} and stats.files_changed == 4


def test_cli_errors_and_json(workspace, tiny_bert_dir, tmp_path):
    def gu(*args, cwd=workspace):
        return subprocess.run([sys.executable, "-m", "groundup", *args], cwd=cwd,
                              capture_output=True, text=True)
    missing = gu("search", "anything", cwd=tmp_path)
    assert missing.returncode == 2 and "run `groundup index`" in missing.stderr
    assert "Traceback" not in missing.stderr
    built = gu("index", ".", "--embedder", str(tiny_bert_dir), "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["files_seen"] == 5
    found = gu("search", "download a web page", "--k", "2", "--json", "--glob", "pkg/*.py")
    results = json.loads(found.stdout)["results"]
    assert results[0]["path"] == "pkg/net.py" and results[0]["start_line"] == 1
    assert set(results[0]) == {"path", "start_line", "end_line", "score", "text"}
    wrong = gu("index", ".", "--embedder", "none")
    assert wrong.returncode == 2 and "built with embedder" in wrong.stderr
    emb = json.loads(gu("embed", "--text", "a", "--text", "b c", "--json",
                        "--embedder", str(tiny_bert_dir)).stdout)
    assert emb["dim"] == 32 and len(emb["embeddings"]) == 2 and len(emb["embeddings"][1]) == 32
