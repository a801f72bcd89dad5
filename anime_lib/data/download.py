"""Careful downloads: plain HTTP(S), Google Drive (through gdown) and safe archive extraction.

Public datasets live on servers that fail in ordinary ways: Google Drive answers a popular file
with an HTML "quota exceeded" page, connections drop half way, archives arrive truncated or
contain paths that point outside the folder they are unpacked into. Every function here
downloads or extracts into a temporary name next to the destination, checks the result, and
only then renames it into place, so a failure never leaves a half-written file where the next
run would trust it. Every failure is a :class:`DownloadError` whose message says what to do.

Nothing here touches the network at import time.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Union

from tqdm.auto import tqdm

__all__ = [
    "DownloadError", "sha256_of", "fetch_url", "fetch_drive", "safe_extract", "extract_into", "verify_file",
    "verify_archive", "read_manifest", "MANIFEST_NAME", "ARCHIVE_SUFFIXES",
]

PathLike = Union[str, os.PathLike]  # typing.Union: requires-python is >= 3.9

#: Files smaller than this are sniffed for an HTML page (error and quota pages are tiny).
HTML_SNIFF_MAX_BYTES = 10 * 1024 * 1024
#: Archive members that are never extracted: macOS resource forks, Jupyter/Colab checkpoints.
JUNK_NAMES = frozenset({"__MACOSX", ".ipynb_checkpoints", ".DS_Store"})
#: Names that are checked as archives (zip or tar) before a download counts as done.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: The list of files an extraction put into a dataset folder (one relative path per line); only
#: these are ever removed or replaced by a later extraction, so your own files there are safe.
MANIFEST_NAME = ".anime_lib_extracted.txt"
_CHUNK = 1 << 20
_USER_AGENT = "anime_lib-downloader/0.1 (+https://github.com/anime-face-course/human2anime)"


class DownloadError(RuntimeError):
    """A download or extraction failed. The message always ends with what to do about it.

    Args:
        problem: what went wrong, in one or two sentences.
        dest: the exact path where the file (or folder) is expected; the advice tells the
            reader to put a manually downloaded copy there.
        source: the URL or Drive id, so the reader can open it in a browser.
        drive: True for Google Drive sources; adds the quota explanation and the
            "copy it to your own Drive and mount it in Colab" advice.
        advice: the first thing to do, replacing the default "retry later" (which cannot help
            when, say, a broken archive sits on disk).
    """

    def __init__(
        self,
        problem: str,
        dest: PathLike | None = None,
        *,
        source: str | None = None,
        drive: bool = False,
        advice: str | None = None,
    ) -> None:
        self.problem = problem
        self.advice = advice
        self.dest = Path(dest) if dest is not None else None
        self.source = source
        self.drive = drive
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = f"at {self.dest.resolve()}" if self.dest is not None else "where the code expects it"
        lines = [self.problem]
        if self.drive:
            lines.append(
                "Google Drive limits how often a public file can be downloaded (daily quota: "
                "'Too many users have viewed or downloaded this file recently'); when the quota "
                "is used up it sends an HTML page instead of the file."
            )
        lines.append("What to do:")
        lines.append(f"  - {self.advice or 'retry later (network hiccups and Drive quotas usually clear within a day)'};")
        browser = f" ({self._browser_url()})" if self.source else ""
        lines.append(f"  - or download the file in a browser{browser} and put it {where};")
        if self.drive:
            lines.append(
                "  - or, in Colab: open the Drive link, 'Make a copy' / 'Add shortcut to Drive' into "
                "your own Drive, mount it (from google.colab import drive; "
                "drive.mount('/content/drive')) and copy the file from /content/drive/MyDrive "
                f"to {self.dest.resolve() if self.dest is not None else 'the path above'}."
            )
        return "\n".join(lines)

    def _browser_url(self) -> str:
        src = self.source or ""
        if self.drive and "://" not in src:
            return f"https://drive.google.com/file/d/{src}/view"
        return src


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _looks_like_html(path: Path, content_type: str | None = None) -> bool:
    if content_type and content_type.split(";")[0].strip().lower() in {"text/html", "application/xhtml+xml"}:
        return True
    if path.stat().st_size > HTML_SNIFF_MAX_BYTES:
        return False
    with open(path, "rb") as f:
        head = f.read(1024).lower()
    return b"<html" in head or b"<!doctype html" in head


def verify_file(
    path: PathLike,
    *,
    dest: PathLike | None = None,
    sha256: str | None = None,
    min_bytes: int | None = None,
    content_type: str | None = None,
    source: str | None = None,
    drive: bool = False,
) -> None:
    """Check a downloaded file; raise :class:`DownloadError` if it is not the real thing.

    Checks, in order: the file is not empty, has at least ``min_bytes`` bytes, is not an HTML
    page (``content_type`` text/html, or ``<html`` / ``<!doctype html`` in the first KB of a
    small file: that is what Drive quota and error pages look like), and its SHA-256 hex digest
    equals ``sha256`` or starts with it (a prefix of at least 8 hex digits is accepted).
    ``dest`` is the final path named in the error message (``path`` may be a temporary file).
    """
    path = Path(path)
    dest = Path(dest) if dest is not None else path
    kw = dict(dest=dest, source=source, drive=drive)
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        raise DownloadError(f"The download of {dest.name} is empty (0 bytes).", **kw)
    if _looks_like_html(path, content_type):
        with open(path, "rb") as f:
            snippet = f.read(300).decode("utf-8", "replace").replace("\n", " ")
        quota = " It looks like a Google Drive quota or error page." if (drive or "drive" in snippet.lower()) else ""
        raise DownloadError(
            f"The server sent an HTML page ({size} bytes) instead of {dest.name}.{quota} "
            f"It begins: {snippet[:200]!r}",
            **kw,
        )
    if min_bytes is not None and size < min_bytes:
        raise DownloadError(
            f"The download of {dest.name} is too small: {size:,} bytes, expected at least "
            f"{min_bytes:,}. It is probably truncated or an error page.",
            **kw,
        )
    if sha256:
        want = sha256.strip().lower()
        if len(want) < 8 or any(c not in "0123456789abcdef" for c in want):
            raise ValueError(f"sha256 must be a hex digest or a prefix of at least 8 hex digits, got {sha256!r}")
        got = sha256_of(path)
        if not got.startswith(want):
            raise DownloadError(
                f"The checksum of {dest.name} does not match: sha256 {got}, expected "
                f"{want}{'...' if len(want) < 64 else ''}. The file is corrupt, truncated or a "
                "different version.",
                **kw,
            )


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def verify_archive(path: PathLike, *, dest: PathLike | None = None, source: str | None = None,
                   drive: bool = False) -> None:
    """Check that ``path`` is a complete zip or tar archive; raise :class:`DownloadError` otherwise.

    A zip must have a readable central directory (it sits at the very end, so a truncated zip
    fails here) and a tar must list all its members (the whole file is read, decompressing .gz,
    .bz2 and .xz). Nothing is extracted. ``dest`` is the path named in the message.
    """
    path = Path(path)
    dest = Path(dest) if dest is not None else path
    kw = dict(dest=dest, source=source, drive=drive)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
            return
        with tarfile.open(path, "r:*") as tf:
            tf.getmembers()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DownloadError(
            f"The download of {dest.name} is not a complete zip or tar archive ({type(exc).__name__}: "
            f"{_first_line(exc)}); it is truncated, corrupt or not the expected file.",
            **kw,
        ) from exc


def _temp_path_next_to(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------------------------
# Plain HTTP(S)
# --------------------------------------------------------------------------------------------
def fetch_url(
    url: str,
    dest: PathLike,
    sha256: str | None = None,
    min_bytes: int | None = None,
    progress: bool = True,
    *,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` with urllib, verify it, and rename it into place atomically.

    The body is streamed into a temporary file in ``dest``'s folder (with a tqdm progress bar
    when ``progress``), then checked with :func:`verify_file` (non-empty, ``min_bytes``,
    not an HTML page, ``sha256`` full digest or prefix) and the received size is compared with
    the Content-Length header. A ``dest`` named like an archive (:data:`ARCHIVE_SUFFIXES`) must
    also be a complete zip or tar (:func:`verify_archive`), which is what catches a truncated
    body when the server sends no Content-Length. HTTP errors, timeouts, dropped connections and
    short bodies raise :class:`DownloadError`; ``dest`` is then left untouched. ``timeout`` is in
    seconds, per socket operation. Returns ``dest`` as a Path.
    """
    dest = Path(dest)
    tmp = _temp_path_next_to(dest)
    kw = dict(dest=dest, source=url)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                content_type = response.headers.get("Content-Type")
                length_header = response.headers.get("Content-Length")
                expected = int(length_header) if length_header and length_header.isdigit() else None
                received = 0
                with open(tmp, "wb") as out, tqdm(
                    total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=dest.name, disable=not progress, leave=False,
                ) as bar:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}.", **kw) from exc
        except http.client.IncompleteRead as exc:
            raise DownloadError(
                f"The connection to {url} closed early: got {len(exc.partial):,} more bytes, "
                f"{exc.expected:,} were still expected. The download is truncated.",
                **kw,
            ) from exc
        except (socket.timeout, TimeoutError) as exc:
            raise DownloadError(f"Downloading {url} timed out after {timeout:g} s without data.", **kw) from exc
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise DownloadError(f"Downloading {url} timed out after {timeout:g} s.", **kw) from exc
            raise DownloadError(f"Could not reach {url}: {reason}.", **kw) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise DownloadError(f"Downloading {url} failed: {type(exc).__name__}: {exc}.", **kw) from exc
        if expected is not None and received != expected:
            raise DownloadError(
                f"The download of {url} is truncated: received {received:,} bytes, the server "
                f"announced {expected:,} (Content-Length).",
                **kw,
            )
        verify_file(tmp, dest=dest, sha256=sha256, min_bytes=min_bytes, content_type=content_type, source=url)
        if _is_archive_name(dest.name):
            verify_archive(tmp, dest=dest, source=url)
        os.replace(tmp, dest)
    finally:
        _unlink_quietly(tmp)
    return dest


# --------------------------------------------------------------------------------------------
# Google Drive (gdown)
# --------------------------------------------------------------------------------------------
def fetch_drive(
    file_id: str,
    dest: PathLike,
    sha256: str | None = None,
    min_bytes: int | None = None,
    *,
    quiet: bool = False,
    downloader: Callable[..., object] | None = None,
) -> Path:
    """Download a public Google Drive file with gdown 6.x, verify it, rename it into place.

    ``downloader`` defaults to ``gdown.download`` (looked up at call time, so tests can
    monkeypatch it); it is called as ``downloader(id=file_id, output=<temp path>, quiet=quiet)``
    and must write the file at ``output``. gdown 6.x raises
    ``gdown.exceptions.FileURLRetrievalError`` when Drive refuses (quota, permissions); older
    versions returned None. Both become :class:`DownloadError` with the quota explanation.
    The result is checked like :func:`fetch_url`'s (gdown does not check HTTP status, so an
    HTML page can arrive as "the file"). Returns ``dest`` as a Path.
    """
    dest = Path(dest)
    kw = dict(dest=dest, source=file_id, drive=True)
    if downloader is None:
        try:
            import gdown
        except ImportError as exc:  # pragma: no cover - gdown is a dependency
            raise DownloadError(
                "gdown is not installed, so Google Drive files cannot be downloaded "
                "(pip install 'gdown>=5').",
                **kw,
            ) from exc
        downloader = gdown.download
    retrieval_errors = _gdown_error_types()
    tmp = _temp_path_next_to(dest)
    try:
        try:
            result = downloader(id=file_id, output=str(tmp), quiet=quiet)
        except retrieval_errors as exc:
            if _is_connection_error(exc):  # no route to Drive at all: the quota advice would mislead
                raise DownloadError(
                    f"Google Drive could not be reached for file {file_id} ({type(exc).__name__}); this "
                    "machine seems to have no network.",
                    dest=dest, source=f"https://drive.google.com/file/d/{file_id}/view",
                    advice="connect to the network (in Colab: reconnect the runtime) and run the cell again",
                ) from exc
            raise DownloadError(
                f"Google Drive refused to serve file {file_id} ({type(exc).__name__}: "
                f"{_first_line(exc)}). This is almost always the download quota.",
                **kw,
            ) from exc
        except OSError as exc:
            raise DownloadError(f"Downloading Drive file {file_id} failed: {exc}.", **kw) from exc
        if result is None:
            raise DownloadError(
                f"gdown returned nothing for Drive file {file_id}: Drive did not hand out the "
                "file, usually because of the download quota or sharing settings.",
                **kw,
            )
        verify_file(tmp, dest=dest, sha256=sha256, min_bytes=min_bytes, source=file_id, drive=True)
        if _is_archive_name(dest.name):
            verify_archive(tmp, dest=dest, source=file_id, drive=True)
        os.replace(tmp, dest)
    finally:
        _unlink_quietly(tmp)
    return dest


def _gdown_error_types() -> tuple[type[BaseException], ...]:
    """gdown's own error classes plus the requests errors it lets through."""
    types: list[type[BaseException]] = []
    try:
        from gdown.exceptions import DownloadError as GdownDownloadError
        from gdown.exceptions import FileURLRetrievalError

        types += [FileURLRetrievalError, GdownDownloadError]
    except ImportError:
        pass
    try:
        import requests

        types.append(requests.RequestException)
    except ImportError:
        pass
    return tuple(types) or (RuntimeError,)


def _is_connection_error(exc: BaseException) -> bool:
    """True for a failure to reach the server at all (DNS, refused connection, timeout), not an answer."""
    try:
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------
def _is_junk(parts: Iterable[str]) -> bool:
    parts = list(parts)
    return any(p in JUNK_NAMES for p in parts) or (bool(parts) and parts[-1].startswith("._"))


def _checked_member_path(name: str, root: Path, archive: Path, target: Path) -> PurePosixPath:
    """The member's relative path, or DownloadError if it would land outside ``root``."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise DownloadError(
            f"Refusing to extract {archive.name}: member {name!r} has an absolute path. "
            f"The archive is unsafe or not the expected one; nothing was written to {target}.",
            dest=archive,
        )
    resolved = (root / norm).resolve()
    if resolved != root and root not in resolved.parents:
        raise DownloadError(
            f"Refusing to extract {archive.name}: member {name!r} would be written outside "
            f"the target folder {target}. The archive is unsafe or not the expected one.",
            dest=archive,
        )
    return PurePosixPath(norm)


def _check_link_target(member: str, link: str, root: Path, archive: Path, target: Path, hard: bool) -> None:
    base = root if hard else (root / member.replace("\\", "/")).parent
    link_norm = link.replace("\\", "/")
    resolved = Path(link_norm).resolve() if link_norm.startswith("/") else (base / link_norm).resolve()
    if resolved != root and root not in resolved.parents:
        raise DownloadError(
            f"Refusing to extract {archive.name}: link {member!r} -> {link!r} points outside "
            f"the target folder {target}. The archive is unsafe or not the expected one.",
            dest=archive,
        )


def _extract_zip(archive: Path, root: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan = []
        for info in infos:
            rel = _checked_member_path(info.filename, root, archive, target)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link_target(info.filename, zf.read(info).decode("utf-8", "replace"), root, archive, target, False)
                continue  # links are never needed for image datasets; not following them is safest
            if _is_junk(rel.parts):
                continue
            plan.append((info, rel))
        for info, rel in plan:
            out = root.joinpath(*rel.parts)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:  # reading checks the CRC
                shutil.copyfileobj(src, dst, _CHUNK)


def _extract_tar(archive: Path, root: Path, target: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()  # reads the whole index: truncated archives fail here
        keep = []
        for m in members:
            rel = _checked_member_path(m.name, root, archive, target)
            if m.issym() or m.islnk():
                _check_link_target(m.name, m.linkname, root, archive, target, hard=m.islnk())
            elif not (m.isfile() or m.isdir()):
                raise DownloadError(
                    f"Refusing to extract {archive.name}: member {m.name!r} is a device or pipe.",
                    dest=archive,
                )
            if _is_junk(rel.parts):
                continue
            keep.append(m)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second line of defence
            tf.extractall(root, members=keep, filter="data")
        else:  # pragma: no cover - old Pythons; our own checks above already ran
            tf.extractall(root, members=keep)


def safe_extract(archive: PathLike, target_dir: PathLike) -> Path:
    """Extract a zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) archive into ``target_dir``.

    The format is recognised from the content, not the file name. Members are written into a
    temporary folder next to ``target_dir``; any member whose path leaves that folder
    (absolute paths, ``..``, links pointing outside) aborts the extraction with
    :class:`DownloadError`, as does a corrupt or truncated archive. ``__MACOSX``,
    ``.ipynb_checkpoints`` and ``.DS_Store`` entries are skipped. Only when everything is
    extracted does the folder move into place, replacing an existing ``target_dir``
    (old folder renamed aside, new one renamed in, old one deleted). Returns ``target_dir``.
    """
    archive = Path(archive)
    target = Path(target_dir)
    if not archive.is_file():
        raise DownloadError(f"The archive {archive} does not exist.", dest=archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent)).resolve()
    corrupt = (
        f"The archive {archive} is corrupt or truncated, so it could not be extracted to {target}."
    )
    try:
        if zipfile.is_zipfile(archive):
            try:
                _extract_zip(archive, tmp_root, target)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
                raise DownloadError(f"{corrupt} ({type(exc).__name__}: {exc})", dest=archive,
                                    advice="delete it and download it again") from exc
        else:
            try:
                is_tar = tarfile.is_tarfile(archive)
            except (OSError, EOFError):
                is_tar = False
            if not is_tar:
                raise DownloadError(
                    f"{archive} is neither a zip nor a tar archive (corrupt, truncated, or an "
                    f"error page saved under the archive's name); nothing was extracted to {target}.",
                    dest=archive,
                )
            try:
                _extract_tar(archive, tmp_root, target)
            except DownloadError:
                raise
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise DownloadError(f"{corrupt} ({type(exc).__name__}: {exc})", dest=archive,
                                    advice="delete it and download it again") from exc
        _move_into_place(tmp_root, target)
    finally:
        if tmp_root.exists():
            shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def _move_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is swapped out, then deleted."""
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    backup.rmdir()
    os.replace(target, backup)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(backup, target)  # put the old folder back; the caller cleans up ``new``
        raise
    if backup.is_dir() and not backup.is_symlink():
        shutil.rmtree(backup, ignore_errors=True)
    else:
        backup.unlink()


# --------------------------------------------------------------------------------------------
# Extracting into a folder that may hold your own files
# --------------------------------------------------------------------------------------------
def read_manifest(folder: PathLike) -> set[str]:
    """The relative paths (POSIX) an earlier :func:`extract_into` wrote into ``folder`` (empty if none)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return set()
    return {line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _write_manifest(folder: Path, names: Iterable[str]) -> None:
    tmp = folder / f"{MANIFEST_NAME}.part"
    tmp.write_text("".join(f"{n}\n" for n in sorted(names)), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)


def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.is_symlink() or b.is_symlink() or a.stat().st_size != b.stat().st_size:
            return False
        return sha256_of(a) == sha256_of(b)
    except OSError:
        return False


def _aside_name(path: Path) -> Path:
    """``name.kept``, or ``name.kept-2``, ... : a free name next to ``path`` (not an image suffix)."""
    candidate = path.with_name(path.name + ".kept")
    k = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.kept-{k}")
        k += 1
    return candidate


def extract_into(archive: PathLike, target_dir: PathLike) -> tuple[list[str], list[Path]]:
    """Extract an archive into ``target_dir`` without ever losing a file that did not come from it.

    The archive is first extracted completely (and checked) by :func:`safe_extract` into a
    temporary folder next to ``target_dir``. Then:

    - files that an earlier extraction wrote (listed in ``target_dir/.anime_lib_extracted.txt``,
      :data:`MANIFEST_NAME`) and that this archive no longer holds are removed;
    - every file of the archive is moved into place. Where a file that is *not* in the manifest
      (yours) sits at the same path with different content, it is renamed to ``<name>.kept``
      first (no image suffix, so image counts ignore it); identical files are simply replaced;
    - the manifest is rewritten with the archive's files.

    Everything else in ``target_dir`` (your notes, your own images, other folders) stays as it
    is. Returns (the archive's files as relative POSIX paths, the paths of files renamed aside).
    Raises :class:`DownloadError` like :func:`safe_extract` for an unsafe, corrupt or truncated
    archive; ``target_dir`` is then untouched.
    """
    target = Path(target_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        try:
            staged = safe_extract(archive, staging / "content")
        except DownloadError as exc:  # name the real target, not the staging folder
            raise DownloadError(exc.problem.replace(str(staging / "content"), str(target)), exc.dest,
                                source=exc.source, drive=exc.drive, advice=exc.advice) from exc
        files: list[str] = []
        folders: list[str] = []
        for dirpath, dirnames, filenames in os.walk(staged):
            rel_dir = Path(dirpath).relative_to(staged)
            folders += [(rel_dir / d).as_posix() for d in dirnames if not (Path(dirpath) / d).is_symlink()]
            files += [(rel_dir / f).as_posix() for f in filenames]
            files += [(rel_dir / d).as_posix() for d in dirnames if (Path(dirpath) / d).is_symlink()]
        previous = read_manifest(target)
        target.mkdir(parents=True, exist_ok=True)
        # Crash safety: list both sets before touching anything, so that an interrupted run leaves
        # no extracted file that a later run would mistake for one of yours.
        _write_manifest(target, previous | set(files))
        for rel in sorted(previous - set(files)):
            old = target / rel
            if old.is_file() or old.is_symlink():
                old.unlink()
        for rel in folders:
            out = target / rel
            if out.exists() and not out.is_dir():
                os.replace(out, _aside_name(out))
            out.mkdir(parents=True, exist_ok=True)
        kept_aside: list[Path] = []
        for rel in files:
            src, out = staged / rel, target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists() or out.is_symlink():
                if out.is_dir() and not out.is_symlink():
                    aside = _aside_name(out)
                    os.replace(out, aside)
                    kept_aside.append(aside)
                elif rel not in previous and not _same_content(src, out):
                    aside = _aside_name(out)
                    os.replace(out, aside)
                    kept_aside.append(aside)
            os.replace(src, out)
        _write_manifest(target, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(files), kept_aside
