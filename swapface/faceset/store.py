"""The faceset: a browsable folder of aligned face PNGs plus one SQLite file of metadata.

This is the contract between extraction, training, swapping and evaluation. Rules:
- one lossless PNG per face, named `<source stem>_<frame>_<face>.png`, next to `faceset.sqlite`;
- a face exists only while both its row and its PNG exist, so deleting a PNG by hand removes the face;
- PNGs are written atomically before their rows are committed, and per-source progress is committed
  with them, so an interrupted extraction leaves a valid faceset and a rerun resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swapface.errors import InputError
from swapface.faces import DEFAULT_BACKEND, LEGACY_BACKEND, SCHEMES
from swapface.faces.align import AlignSpec
from swapface.media.images import read_rgb, write_rgb
from swapface.outputs import is_inside

DB_NAME = "faceset.sqlite"
FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    filename TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    frame INTEGER NOT NULL,
    time REAL NOT NULL,
    face INTEGER NOT NULL,
    bbox TEXT NOT NULL,
    landmarks TEXT NOT NULL,
    crop_landmarks TEXT NOT NULL,
    matrix TEXT NOT NULL,
    embedding TEXT NOT NULL,
    sharpness REAL NOT NULL,
    score REAL NOT NULL,
    frame_width INTEGER NOT NULL,
    frame_height INTEGER NOT NULL,
    dense TEXT
);
CREATE INDEX IF NOT EXISTS faces_by_source ON faces (source, frame, face);
CREATE TABLE IF NOT EXISTS progress (
    source TEXT PRIMARY KEY,
    next_frame INTEGER NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class FaceRecord:
    """Everything known about one extracted face. Points and matrices are in pixels."""

    filename: str
    source: str
    frame: int
    time: float
    face: int
    bbox: np.ndarray  # (4,) x0, y0, x1, y1 in the source frame
    landmarks: np.ndarray  # (68, 2) in the source frame
    crop_landmarks: np.ndarray  # (68, 2) in the aligned crop
    matrix: np.ndarray  # (2, 3) source frame -> crop
    embedding: np.ndarray  # (128,) identity descriptor
    sharpness: float
    score: float
    frame_width: int
    frame_height: int
    dense: np.ndarray | None = None  # (N, 2) the backend's own denser points in the source frame (MediaPipe: 478)

    def crop_dense(self) -> np.ndarray | None:
        """The dense points in the aligned crop (for the mesh's face, mouth, eye and iris masks)."""
        if self.dense is None:
            return None
        return self.dense @ self.matrix[:, :2].T + self.matrix[:, 2]


def _dump(array: np.ndarray) -> str:
    return json.dumps(np.round(np.asarray(array, np.float64), 4).tolist())


def _load(text: str, dtype=np.float64) -> np.ndarray:
    return np.array(json.loads(text), dtype=dtype)


_COLUMNS = (
    "filename, source, frame, time, face, bbox, landmarks, crop_landmarks, matrix, embedding, "
    "sharpness, score, frame_width, frame_height, dense"
)


def _record(row: tuple) -> FaceRecord:
    return FaceRecord(
        filename=row[0], source=row[1], frame=row[2], time=row[3], face=row[4], bbox=_load(row[5]),
        landmarks=_load(row[6]), crop_landmarks=_load(row[7]), matrix=_load(row[8]),
        embedding=_load(row[9], np.float32), sharpness=row[10], score=row[11], frame_width=row[12],
        frame_height=row[13], dense=_load(row[14]) if row[14] else None,
    )


def is_faceset(path: str | Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class Faceset:
    """A faceset folder. Open existing ones with `Faceset.open`, new or resumed ones with `create`."""

    def __init__(self, root: Path, db: sqlite3.Connection) -> None:
        self.root = root
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta"))
        self.spec = AlignSpec(int(meta["size"]), meta["coverage"])
        self.backend = meta.get("backend", LEGACY_BACKEND)
        self.scheme = meta.get("scheme", SCHEMES.get(self.backend, self.backend))
        self._stems: dict[str, str] = {}  # source -> file-name stem, decided once per source

    @classmethod
    def open(cls, path: str | Path) -> Faceset:
        """Open an existing faceset for reading (raises InputError if `path` is not one)."""
        root = Path(path)
        if not root.is_dir():
            raise InputError(root, "no such faceset folder")
        if not is_faceset(root):
            raise InputError(root, f"not a faceset (no {DB_NAME})")
        try:
            db = sqlite3.connect(root / DB_NAME)
            # Every page is read once here, so damage shows now, not after work was done on it.
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(check[0] if check else "no answer from quick_check")
            version = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(root / DB_NAME, f"damaged faceset database ({' '.join(str(exc).split())})") from None
        if version is None or int(version[0]) > FORMAT_VERSION:
            raise InputError(root / DB_NAME, "unknown faceset format version")
        if "dense" not in {row[1] for row in db.execute("PRAGMA table_info(faces)")}:
            # A faceset made before dense points were kept: add the column (empty), unless it is read-only.
            with contextlib.suppress(sqlite3.OperationalError), db:
                db.execute("ALTER TABLE faces ADD COLUMN dense TEXT")
        return cls(root, db)

    @classmethod
    def create(cls, path: str | Path, spec: AlignSpec, backend: str = DEFAULT_BACKEND) -> Faceset:
        """Create a faceset, or reopen one made with the same crop geometry and face backend to resume it."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise InputError(root, "exists and is not a folder")
        if is_faceset(root):
            faceset = cls.open(root)
            if faceset.spec != spec:
                raise InputError(root, f"faceset holds {faceset.spec.size} px '{faceset.spec.coverage}' "
                                       f"crops; asked for {spec.size} px '{spec.coverage}'")
            if faceset.backend != backend:
                raise InputError(root, f"faceset was made with the {faceset.backend} face backend; asked for "
                                       f"{backend} (its landmarks would not match)")
            return faceset
        root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(root / DB_NAME)
        with db:
            db.executescript(_SCHEMA)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("format", str(FORMAT_VERSION)), ("size", str(spec.size)),
                ("coverage", spec.coverage), ("backend", backend), ("scheme", SCHEMES[backend]),
            ])
        return cls(root, db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Faceset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def records(self, source: str | None = None) -> list[FaceRecord]:
        """Faces whose PNG still exists, ordered by source, frame and face."""
        has_dense = "dense" in {row[1] for row in self._db.execute("PRAGMA table_info(faces)")}
        query = f"SELECT {_COLUMNS if has_dense else _COLUMNS.replace(', dense', ', NULL')} FROM faces"
        args: tuple = ()
        if source is not None:
            query += " WHERE source = ?"
            args = (source,)
        rows = self._db.execute(query + " ORDER BY source, frame, face", args).fetchall()
        return [_record(r) for r in rows if self._inside(r[0]).is_file()]

    def _inside(self, filename: str) -> Path:
        """The path of a face file, which must be a plain name resolving inside the faceset: a row may
        not make training, previews or a web page read any other file of the machine."""
        path = self.root / filename
        if (not filename or Path(filename).name != filename or filename in (".", "..")
                or not is_inside(path, self.root) or os.path.realpath(path) == os.path.realpath(self.root)):
            raise InputError(self.root / DB_NAME, f"a face row names {filename!r}, which is not a file inside the "
                                                  "faceset")
        return path

    def __len__(self) -> int:
        return len(self.records())

    def path_of(self, record: FaceRecord) -> Path:
        return self._inside(record.filename)

    def load_image(self, record: FaceRecord) -> np.ndarray:
        """The aligned crop of a face, RGB uint8."""
        return read_rgb(self.path_of(record))

    def embeddings(self) -> np.ndarray:
        """(N, 128) identity embeddings of all faces."""
        records = self.records()
        if not records:
            return np.zeros((0, 128), np.float32)
        return np.stack([r.embedding for r in records])

    def mean_embedding(self) -> np.ndarray:
        embeddings = self.embeddings()
        if len(embeddings) == 0:
            raise InputError(self.root, "faceset holds no faces")
        return embeddings.mean(0)

    # -- writing (extraction) ----------------------------------------------------------------------

    def next_frame(self, source: str) -> int:
        """First frame index of `source` not yet processed (0 for a new source)."""
        row = self._db.execute("SELECT next_frame FROM progress WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def is_complete(self, source: str) -> bool:
        row = self._db.execute("SELECT complete FROM progress WHERE source = ?", (source,)).fetchone()
        return bool(row and row[0])

    def filename_for(self, source: str, frame: int, face: int) -> str:
        """Stable file name for a face, readable and unique across sources with the same stem."""
        stem = self._stems.get(source)
        if stem is None:
            stem = Path(source).stem
            owner = self._db.execute(
                "SELECT source FROM faces WHERE filename LIKE ? ESCAPE '\\' AND source != ? LIMIT 1",
                (f"{stem}\\_%", source),
            ).fetchone()
            if owner is not None:
                stem += "-" + hashlib.sha1(source.encode()).hexdigest()[:6]
            self._stems[source] = stem
        return f"{stem}_{frame:06d}_{face}.png"

    def commit_frames(self, source: str, faces: Iterable[tuple[FaceRecord, np.ndarray]],
                      next_frame: int, complete: bool = False) -> None:
        """Write face PNGs (atomically), then their rows and the source's progress in one transaction."""
        faces = list(faces)
        for record, crop in faces:
            write_rgb(self.root / record.filename, crop)
        with self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO faces ({_COLUMNS}) VALUES "
                                 "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (r.filename, r.source, r.frame, r.time, r.face, _dump(r.bbox), _dump(r.landmarks),
                 _dump(r.crop_landmarks), _dump(r.matrix), _dump(r.embedding), r.sharpness, r.score,
                 r.frame_width, r.frame_height, None if r.dense is None else _dump(r.dense)) for r, _ in faces
            ])
            self._db.execute("INSERT OR REPLACE INTO progress VALUES (?, ?, ?)",
                             (source, next_frame, int(complete)))


def shared_backend(paths: Iterable[str | Path]) -> dict[str, str]:
    """The face backend and landmark scheme that made all these facesets (a model dir records them, so
    swap aligns faces the way its training crops were aligned); facesets of different backends cannot
    train one model, as their crops are aligned differently."""
    seen: dict[str, str] = {}
    first: Path | None = None
    for path in paths:
        with Faceset.open(path) as faceset:
            made = {"backend": faceset.backend, "scheme": faceset.scheme}
        if first is None:
            seen, first = made, Path(path)
        elif made != seen:
            raise InputError(path, f"faces come from the {made['backend']} backend but {first} has "
                                   f"{seen['backend']}'s; extract both with the same --backend")
    return seen
