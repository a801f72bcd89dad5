"""Downloads, safe extraction, the dataset registry and local folders, all offline.

A ThreadingHTTPServer on 127.0.0.1 serves archives the tests build (good, truncated, unsafe,
an HTML quota page) plus two misbehaving endpoints: one that lies about Content-Length and
one that is too slow. gdown is replaced by fakes, so nothing leaves the machine.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import gdown
import gdown.exceptions
import numpy as np
import pytest
import torch
from PIL import Image

from anime_lib.data.download import DownloadError, fetch_drive, fetch_url, safe_extract
from anime_lib.data import registry
from anime_lib.data.images import ImageError
from anime_lib.data.registry import (
    REGISTRY,
    UnpairedImageFolder,
    describe,
    list_datasets,
    local_folder,
    parse_celeba_attributes,
    parse_celeba_landmarks,
    parse_celeba_partition,
    prepare,
    with_counts,
)

SMALL_LAYOUT = {"trainA": 3, "trainB": 2, "testA": 1, "testB": 1}
QUOTA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
    b"<p>Too many users have viewed or downloaded this file recently. Please try accessing "
    b"the file again later.</p></body></html>"
)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
def png_bytes(color=(200, 30, 30), size=(8, 8), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """``zf.writestr(name, data)`` with a fixed timestamp: the same archive has the same bytes (and SHA-256) on
    every call (writestr would stamp the current time, two seconds apart on a slow machine)."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zf.compression
    info.external_attr = ((0o40775 << 16) | 0x10) if name.endswith("/") else 0o600 << 16
    zf.writestr(info, data)


def selfie_zip(prefix: str = "") -> bytes:
    """A zip in the selfie2anime layout with SMALL_LAYOUT counts, plus macOS/Colab junk."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, n in SMALL_LAYOUT.items():
            _put(zf, f"{prefix}{folder}/", b"")
            for i in range(n):
                _put(zf, f"{prefix}{folder}/{i:04d}.png", png_bytes((10 * i, 100, 200)))
        _put(zf, f"__MACOSX/{prefix}trainA/._0000.png", b"junk")
        _put(zf, f"{prefix}trainA/.DS_Store", b"junk")
        _put(zf, f"{prefix}trainA/.ipynb_checkpoints/0000-checkpoint.png", png_bytes())
    return buf.getvalue()


def zip_with(name: str, data: bytes = b"gotcha") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _put(zf, "trainA/0000.png", png_bytes())
        _put(zf, name, data)
    return buf.getvalue()


def tar_with(members: list[tarfile.TarInfo], data: bytes = b"gotcha", mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tf.addfile(m, io.BytesIO(data))
            else:
                tf.addfile(m)
    return buf.getvalue()


def file_info(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def symlink_info(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


# --------------------------------------------------------------------------------------------
# Loopback server
# --------------------------------------------------------------------------------------------
class Server:
    def __init__(self, folder: Path, port: int, hits: Counter) -> None:
        self.folder, self.port, self.hits = folder, port, hits

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def put(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        return self.url(name)


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    hits: Counter = Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            hits[self.path] += 1
            if self.path == "/lying.zip":  # announces 1000 bytes, sends 100, hangs up
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"PK" + b"\0" * 98)
                self.close_connection = True
                return
            if self.path == "/error_page":  # text/html with no HTML markup in the body
                body = b"Quota exceeded for this file."
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path == "/slow.zip":
                time.sleep(0.6)
            if self.path == "/disguised.zip":  # an HTML page without an HTML content type
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(QUOTA_PAGE)))
                self.end_headers()
                self.wfile.write(QUOTA_PAGE)
                return
            super().do_GET()

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the slow endpoint's client hangs up
            pass

    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv = Server(folder, httpd.server_address[1], hits)
    srv.put("good.zip", selfie_zip())
    srv.put("wrapped.zip", selfie_zip(prefix="selfie2anime/"))
    srv.put("truncated.zip", selfie_zip()[: len(selfie_zip()) // 2])
    srv.put("quota.html", QUOTA_PAGE)
    srv.put("evil.zip", zip_with("../evil.txt"))
    yield srv
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def small_selfie():
    """selfie2anime with tiny counts and no Drive id or size floor, for the loopback server."""
    return with_counts(REGISTRY["selfie2anime"], SMALL_LAYOUT, drive_id=None, min_bytes=None)


def no_part_files(folder: Path) -> bool:
    return not any(p.name.endswith(".part") for p in folder.rglob("*"))


# --------------------------------------------------------------------------------------------
# fetch_url
# --------------------------------------------------------------------------------------------
def test_fetch_url_good_file_with_sha256_prefix(server, tmp_path):
    data = selfie_zip()
    assert data == (server.folder / "good.zip").read_bytes()  # the archive is built the same way every time
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "dl" / "good.zip"
    out = fetch_url(server.url("good.zip"), dest, sha256=digest[:12], min_bytes=100, progress=False)
    assert out == dest and dest.read_bytes() == data
    fetch_url(server.url("good.zip"), dest, sha256=digest.upper(), progress=False)
    assert no_part_files(dest.parent)


def test_fetch_url_sha256_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "dl" / "good.zip"
    with pytest.raises(DownloadError, match="checksum") as err:
        fetch_url(server.url("good.zip"), dest, sha256="0" * 64, progress=False)
    assert str(dest.resolve()) in str(err.value)
    assert not dest.exists() and no_part_files(dest.parent)


def test_fetch_url_min_bytes(server, tmp_path):
    dest = tmp_path / "good.zip"
    with pytest.raises(DownloadError, match="too small") as err:
        fetch_url(server.url("good.zip"), dest, min_bytes=10_000_000, progress=False)
    assert str(dest.resolve()) in str(err.value) and not dest.exists()


@pytest.mark.parametrize("name", ["quota.html", "disguised.zip", "error_page"])
def test_fetch_url_rejects_html_quota_page(server, tmp_path, name):
    dest = tmp_path / "selfie2anime.zip"
    with pytest.raises(DownloadError, match="HTML page") as err:
        fetch_url(server.url(name), dest, progress=False)
    msg = str(err.value)
    assert str(dest.resolve()) in msg and "retry later" in msg and "browser" in msg
    assert not dest.exists() and no_part_files(tmp_path)


def test_fetch_url_content_length_lie_is_truncation(server, tmp_path):
    dest = tmp_path / "lying.zip"
    with pytest.raises(DownloadError, match="truncated|closed early") as err:
        fetch_url(server.url("lying.zip"), dest, progress=False)
    assert str(dest.resolve()) in str(err.value) and not dest.exists()
    assert no_part_files(tmp_path)


def test_fetch_url_http_404(server, tmp_path):
    dest = tmp_path / "missing.zip"
    with pytest.raises(DownloadError, match="404") as err:
        fetch_url(server.url("missing.zip"), dest, progress=False)
    assert str(dest.resolve()) in str(err.value)


def test_fetch_url_timeout(server, tmp_path):
    dest = tmp_path / "slow.zip"
    server.put("slow.zip", b"x" * 10)
    with pytest.raises(DownloadError, match="timed out") as err:
        fetch_url(server.url("slow.zip"), dest, progress=False, timeout=0.1)
    assert str(dest.resolve()) in str(err.value) and not dest.exists()


def test_failed_download_keeps_existing_file(server, tmp_path):
    dest = tmp_path / "selfie2anime.zip"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(DownloadError):
        fetch_url(server.url("quota.html"), dest, progress=False)
    assert dest.read_bytes() == b"previous good copy"


# --------------------------------------------------------------------------------------------
# fetch_drive (gdown is faked)
# --------------------------------------------------------------------------------------------
def test_fetch_drive_quota_error_becomes_download_error(monkeypatch, tmp_path):
    def refuse(**kwargs):
        raise gdown.exceptions.FileURLRetrievalError(
            "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file recently."
        )

    monkeypatch.setattr(gdown, "download", refuse)
    dest = tmp_path / "selfie2anime.zip"
    with pytest.raises(DownloadError) as err:
        fetch_drive("abc123", dest)
    msg = str(err.value)
    assert "quota" in msg and "FileURLRetrievalError" in msg and str(dest.resolve()) in msg
    assert "own Drive" in msg and "drive.mount" in msg and "https://drive.google.com/file/d/abc123" in msg
    assert not dest.exists() and no_part_files(tmp_path)


def test_fetch_drive_without_network_says_so_instead_of_blaming_the_quota(monkeypatch, tmp_path):
    import requests

    def offline(**kwargs):
        raise requests.ConnectionError("Failed to resolve 'drive.google.com' ([Errno -2] Name or service not known)")

    monkeypatch.setattr(gdown, "download", offline)
    dest = tmp_path / "selfie2anime.zip"
    with pytest.raises(DownloadError) as err:
        fetch_drive("abc123", dest)
    msg = str(err.value)
    assert "no network" in msg and "quota" not in msg and str(dest.resolve()) in msg
    assert "https://drive.google.com/file/d/abc123" in msg and not dest.exists()


def test_fetch_drive_none_result_becomes_download_error(tmp_path):
    calls = []

    def old_gdown(**kwargs):
        calls.append(kwargs)
        return None

    dest = tmp_path / "x.zip"
    with pytest.raises(DownloadError, match="gdown returned nothing") as err:
        fetch_drive("abc123", dest, downloader=old_gdown)
    assert "quota" in str(err.value) and str(dest.resolve()) in str(err.value)
    assert calls and calls[0]["id"] == "abc123" and "fuzzy" not in calls[0]


def test_fetch_drive_html_saved_as_file_is_rejected(tmp_path):
    def writes_html(id, output, quiet):
        Path(output).write_bytes(QUOTA_PAGE)
        return output

    dest = tmp_path / "x.zip"
    with pytest.raises(DownloadError, match="HTML page.*quota") as err:
        fetch_drive("abc123", dest, downloader=writes_html)
    assert str(dest.resolve()) in str(err.value) and not dest.exists()


def test_fetch_drive_success_and_sha(monkeypatch, tmp_path):
    data = selfie_zip()

    def writes_zip(id, output, quiet):
        Path(output).write_bytes(data)
        return output

    monkeypatch.setattr(gdown, "download", writes_zip)
    dest = tmp_path / "x.zip"
    assert fetch_drive("abc123", dest, sha256=hashlib.sha256(data).hexdigest()) == dest
    assert dest.read_bytes() == data
    with pytest.raises(DownloadError, match="checksum"):
        fetch_drive("abc123", tmp_path / "y.zip", sha256="deadbeefdeadbeef")


# --------------------------------------------------------------------------------------------
# safe_extract
# --------------------------------------------------------------------------------------------
def test_safe_extract_skips_junk_and_replaces_target(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(selfie_zip())
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    assert safe_extract(archive, target) == target
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in (target / "trainA").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert not (target / "__MACOSX").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_safe_extract_tar_gz(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_with([file_info("images/1.png"), file_info("images/.DS_Store")], png_bytes(), "w:gz"))
    target = safe_extract(archive, tmp_path / "out")
    assert [p.name for p in (target / "images").iterdir()] == ["1.png"]


def test_safe_extract_refuses_dotdot_zip_and_keeps_old_target(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_with("../evil.txt"))
    target = tmp_path / "data" / "out"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("old")
    with pytest.raises(DownloadError, match="outside") as err:
        safe_extract(archive, target)
    assert str(target) in str(err.value) and str(archive.resolve()) in str(err.value)
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert (target / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out"]  # no temp folder left


def test_safe_extract_refuses_absolute_tar_member(tmp_path):
    victim = tmp_path / "victim.txt"
    archive = tmp_path / "abs.tar"
    archive.write_bytes(tar_with([file_info(str(victim))]))
    with pytest.raises(DownloadError, match="absolute") as err:
        safe_extract(archive, tmp_path / "out")
    assert str(tmp_path / "out") in str(err.value)
    assert not victim.exists() and not (tmp_path / "out").exists()


def test_safe_extract_refuses_symlink_out_of_target(tmp_path):
    archive = tmp_path / "link.tar"
    archive.write_bytes(tar_with([symlink_info("images/link", "../../../etc/passwd")]))
    with pytest.raises(DownloadError, match="points outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("payload", [selfie_zip()[:300], selfie_zip()[: len(selfie_zip()) - 30], QUOTA_PAGE])
def test_safe_extract_corrupt_archive(tmp_path, payload):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(payload)
    with pytest.raises(DownloadError, match="corrupt") as err:
        safe_extract(archive, tmp_path / "out")
    assert str(archive.resolve()) in str(err.value)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Registry: prepare
# --------------------------------------------------------------------------------------------
def test_prepare_downloads_extracts_verifies_then_reuses(server, tmp_path, small_selfie):
    root = tmp_path / "data"
    url = server.url("good.zip")
    folder = prepare(small_selfie, root=root, url=url, progress=False)
    assert folder == root / "selfie2anime"
    assert {d: len(list((folder / d).glob("*.png"))) for d in SMALL_LAYOUT} == SMALL_LAYOUT
    assert server.hits["/good.zip"] == 1
    (folder / "my_notes.md").write_text("kept")
    assert small_selfie.prepare(root, url=url, progress=False) == folder
    assert server.hits["/good.zip"] == 1  # already present and valid: no second download...
    assert (folder / "my_notes.md").exists()  # ...and no re-extraction either
    # a broken folder is re-extracted from the archive already on disk, still without network
    (folder / "trainB" / "0000.png").unlink()
    assert small_selfie.prepare(root, url=url, progress=False) == folder
    assert (folder / "trainB" / "0000.png").exists() and server.hits["/good.zip"] == 1
    small_selfie.prepare(root, force=True, url=url, progress=False)
    assert server.hits["/good.zip"] == 2


def test_prepare_finds_wrapped_layout(server, tmp_path, small_selfie):
    folder = small_selfie.prepare(tmp_path, url=server.url("wrapped.zip"), progress=False)
    assert folder == tmp_path / "selfie2anime" / "selfie2anime"
    assert small_selfie.locate(tmp_path) == folder


def test_prepare_uses_archive_put_there_by_hand(tmp_path, small_selfie):
    small_selfie.archive_path(tmp_path).write_bytes(selfie_zip())
    assert small_selfie.prepare(tmp_path, url="http://127.0.0.1:9/never-called") == tmp_path / "selfie2anime"


def test_prepare_wrong_counts(server, tmp_path):
    spec = with_counts(REGISTRY["selfie2anime"], {"trainA": 3400, "trainB": 2}, drive_id=None, min_bytes=None)
    with pytest.raises(DownloadError, match="expected layout") as err:
        spec.prepare(tmp_path, url=server.url("good.zip"), progress=False)
    assert "trainA: 3" in str(err.value) and str(spec.archive_path(tmp_path).resolve()) in str(err.value)


def test_prepare_exact_counts_reject_extra_images(server, tmp_path):
    spec = with_counts(REGISTRY["selfie2anime"], {"trainA": 2}, drive_id=None, min_bytes=None)
    with pytest.raises(DownloadError, match="expected layout"):
        spec.prepare(tmp_path, url=server.url("good.zip"), progress=False)


def test_prepare_min_count_layout(server, tmp_path):
    spec = with_counts(REGISTRY["anime_faces"], {"trainA": 2}, drive_id=None, min_bytes=None)
    assert not spec.exact
    assert spec.prepare(tmp_path, url=server.url("good.zip"), progress=False) == tmp_path / "anime_faces"


@pytest.mark.parametrize("name", ["truncated.zip", "quota.html", "evil.zip", "lying.zip"])
def test_prepare_bad_sources_raise_with_path(server, tmp_path, small_selfie, name):
    with pytest.raises(DownloadError) as err:
        small_selfie.prepare(tmp_path, url=server.url(name), progress=False)
    assert str(small_selfie.archive_path(tmp_path).resolve()) in str(err.value)
    assert small_selfie.locate(tmp_path) is None


def test_prepare_through_drive(monkeypatch, tmp_path):
    spec = with_counts(REGISTRY["selfie2anime"], SMALL_LAYOUT, min_bytes=None)
    seen = []

    def fake_download(id, output, quiet):
        seen.append(id)
        Path(output).write_bytes(selfie_zip())
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    assert spec.prepare(tmp_path, progress=False) == tmp_path / "selfie2anime"
    assert seen == ["1xOWj1UVgp6NKMT3HbPhBbtq2A4EDkghF"]


def test_prepare_without_automatic_source_explains(tmp_path):
    with pytest.raises(DownloadError, match="cannot be downloaded automatically") as err:
        prepare("ffhq_thumbs", root=tmp_path)
    msg = str(err.value)
    assert str((tmp_path / "ffhq_thumbs.zip").resolve()) in msg and "1tg-Ur7d4vk1T8Bn0pPpUSQPxlPGBlGfv" in msg


def test_registry_entries_and_describe(tmp_path):
    assert list_datasets() == ["selfie2anime", "anime_faces", "celeba", "ffhq_thumbs"]
    s2a = REGISTRY["selfie2anime"]
    assert dict(s2a.layout) == {"trainA": 3400, "trainB": 3400, "testA": 100, "testB": 100} and s2a.exact
    assert REGISTRY["anime_faces"].layout["images"] == 60000 and not REGISTRY["anime_faces"].exact
    assert REGISTRY["ffhq_thumbs"].layout["thumbnails128x128"] == 70000
    with pytest.raises(TypeError):
        s2a.layout["trainA"] = 1  # frozen all the way down
    text = describe("selfie2anime", root=tmp_path)
    assert "1xOWj1UVgp6NKMT3HbPhBbtq2A4EDkghF" in text and "research" in text
    assert str(tmp_path / "selfie2anime.zip") in text
    assert "splcher/animefacedataset" in describe("anime_faces", tmp_path) and "educational" in describe("anime_faces", tmp_path)
    assert "non-commercial" in describe("celeba", tmp_path)
    with pytest.raises(ValueError, match="selfie2anime"):
        describe("nope")


# --------------------------------------------------------------------------------------------
# CelebA parsers
# --------------------------------------------------------------------------------------------
ATTRS = [f"Attr_{i}" for i in range(40)]


def test_parse_celeba_attributes_txt_and_csv(tmp_path):
    v1 = [1 if i % 3 == 0 else -1 for i in range(40)]
    v2 = [-1] * 39 + [1]
    txt = tmp_path / "list_attr_celeba.txt"
    txt.write_text(
        "2\n" + " ".join(ATTRS) + " \n"
        + "000001.jpg " + " ".join(f"{v:2d}" for v in v1) + "\n"
        + "000002.jpg  " + "  ".join(map(str, v2)) + "\n"
    )
    names, attrs = parse_celeba_attributes(txt)
    assert names == ATTRS and set(attrs) == {"000001.jpg", "000002.jpg"}
    assert attrs["000001.jpg"].dtype == np.int8 and attrs["000001.jpg"].shape == (40,)
    assert attrs["000001.jpg"].tolist() == v1 and attrs["000002.jpg"].tolist() == v2
    csv = tmp_path / "list_attr_celeba.csv"
    csv.write_text("image_id," + ",".join(ATTRS) + "\n000001.jpg," + ",".join(map(str, v1)) + "\n")
    names_csv, attrs_csv = parse_celeba_attributes(csv)
    assert names_csv == ATTRS and attrs_csv["000001.jpg"].tolist() == v1


@pytest.mark.parametrize(
    "body, problem",
    [
        ("3\n{h}\n000001.jpg {v}\n", "says 3"),
        ("1\n{h}\n000001.jpg {v} 1\n", "41 values"),
        ("1\n{h}\n000001.jpg 0 {w}\n", "other than -1 or 1"),
    ],
)
def test_parse_celeba_attributes_rejects_bad_files(tmp_path, body, problem):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(body.format(h=" ".join(ATTRS), v=" ".join(["1"] * 40), w=" ".join(["1"] * 39)))
    with pytest.raises(ValueError, match=problem):
        parse_celeba_attributes(path)


def test_parse_celeba_landmarks(tmp_path):
    path = tmp_path / "list_landmarks_align_celeba.txt"
    path.write_text(
        "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        "000001.jpg 69  109  106  113   77  142   73  152  108  154\n"
        "000002.jpg 69  110  107  112   81  135   70  151  108  153\n"
    )
    marks = parse_celeba_landmarks(path)
    assert marks["000001.jpg"].shape == (5, 2)
    assert marks["000001.jpg"][0].tolist() == [69, 109] and marks["000002.jpg"][4].tolist() == [108, 153]
    path.write_text("1\nlefteye_x lefteye_y\n000001.jpg 69 109\n")
    with pytest.raises(ValueError, match="10 landmark columns"):
        parse_celeba_landmarks(path)


def test_parse_celeba_partition(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    assert parse_celeba_partition(path) == {"000001.jpg": 0, "000002.jpg": 1, "000003.jpg": 2}
    csv = tmp_path / "list_eval_partition.csv"
    csv.write_text("image_id,partition\n000001.jpg,2\n")
    assert parse_celeba_partition(csv) == {"000001.jpg": 2}
    path.write_text("000001.jpg 3\n")
    with pytest.raises(ValueError, match="line 1"):
        parse_celeba_partition(path)


# --------------------------------------------------------------------------------------------
# local_folder / UnpairedImageFolder
# --------------------------------------------------------------------------------------------
def make_tree(root: Path) -> None:
    for d in ["trainA", "trainB", "testA", "testB", "trainA/.ipynb_checkpoints"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 20), (255, 255, 255)).save(root / "trainA" / "b_white_wide.png")
    Image.new("RGB", (20, 20), (0, 0, 0)).save(root / "trainA" / "a_black.jpg")
    Image.new("L", (16, 40), 128).save(root / "trainA" / "c_gray_tall.webp")
    Image.new("RGB", (8, 8)).save(root / "trainA" / ".ipynb_checkpoints" / "a_black-checkpoint.png")
    (root / "trainA" / "notes.txt").write_text("not an image")
    Image.new("RGBA", (16, 16), (255, 0, 0, 255)).save(root / "trainB" / "x.png")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(root / "testA" / "t.jpeg")
    Image.new("RGB", (16, 16), (0, 255, 0)).save(root / "testB" / "t.png")


def test_local_folder_layout_shapes_and_range(tmp_path):
    make_tree(tmp_path)
    ds = local_folder(tmp_path, size=16)
    assert isinstance(ds, UnpairedImageFolder)
    assert [p.name for p in ds.files_a] == ["a_black.jpg", "b_white_wide.png", "c_gray_tall.webp"]
    assert [p.name for p in ds.files_b] == ["x.png"] and len(ds) == 3
    for i in range(len(ds)):
        a, b = ds[i]
        for t in (a, b):
            assert t.shape == (3, 16, 16) and t.dtype == torch.float32
            assert t.min() >= -1.0 and t.max() <= 1.0
    assert torch.all(ds[0][0] == -1.0)  # black -> -1, not 0: the range is [-1, 1], not [0, 1]
    assert torch.all(ds[1][0] == 1.0)  # white, wide image centre-cropped
    assert torch.allclose(ds[2][0], torch.full((3, 16, 16), 128 / 127.5 - 1), atol=0.02)
    assert ds[0][1][0].mean() > 0.9 and ds[0][1][1].mean() < -0.9  # opaque RGBA red -> RGB red
    test = local_folder(tmp_path, split="test", size=8)
    assert len(test) == 1 and test[0][0].shape == (3, 8, 8)
    with pytest.raises(IndexError):
        ds[3]


def test_local_folder_shares_the_course_loader(tmp_path):
    """Transparency is composited on white and bad files raise ImageError naming them."""
    make_tree(tmp_path)
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(tmp_path / "trainB" / "x.png")  # fully transparent
    ds = local_folder(tmp_path, size=16)
    assert torch.all(ds[0][1] == 1.0)
    (tmp_path / "trainA" / "a_black.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageError, match="a_black.jpg"):
        ds[0]
    Image.new("RGB", (10, 10)).save(tmp_path / "trainA" / "a_black.jpg")
    with pytest.raises(ImageError, match="too small"):
        ds[0]


def test_local_folder_two_folders(tmp_path):
    make_tree(tmp_path)
    ds = local_folder(tmp_path / "testB", tmp_path / "trainA", size=4)
    assert len(ds.files_a) == 1 and len(ds.files_b) == 3 and len(ds) == 3
    assert len(local_folder((tmp_path / "testA", tmp_path / "testB"), size=4)) == 1


def test_local_folder_errors_name_the_folder(tmp_path):
    make_tree(tmp_path)
    empty = tmp_path / "empty"
    (empty / ".ipynb_checkpoints").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(empty / ".ipynb_checkpoints" / "x.png")
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="empty holds no images"):
        local_folder(tmp_path / "trainA", empty)
    with pytest.raises(ValueError, match="trainA/ and trainB/"):
        local_folder(tmp_path / "trainA")
    with pytest.raises(ValueError, match="missing is not a folder"):
        local_folder(tmp_path / "trainA", tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# A lesson's optional real-photo part: downloaded once, and a refused download never stops the lesson
# --------------------------------------------------------------------------------------------
def test_real_photos_download_once_then_come_from_the_cache(server, tmp_path, monkeypatch, capsys):
    from anime_lib.data.domains import load_real_photos

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for folder, n in SMALL_LAYOUT.items():
            for i in range(n):
                _put(zf, f"{folder}/{i:04d}.jpg", _jpeg_bytes((20 * i, 90, 160), (24, 20)))
    url = server.put("photos.zip", buf.getvalue())
    spec = with_counts(REGISTRY["selfie2anime"], SMALL_LAYOUT, drive_id=None, min_bytes=None, url=url)
    monkeypatch.setattr(registry, "REGISTRY", {**REGISTRY, "selfie2anime": spec})
    for _ in range(2):  # the second lesson (or session) finds the folder the first one prepared
        real = load_real_photos("selfie2anime", 16, n_train=10, n_eval=10, root=tmp_path / "data")
        assert real is not None and not real.has_ground_truth
        assert {d: len(real.train[d]) for d in real.train} == {"human": 3, "anime": 2}
        assert real.test["human"].tensor().shape == (1, 3, 16, 16)
    assert server.hits["/photos.zip"] == 1


def _jpeg_bytes(color, size) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG")
    return out.getvalue()


def test_a_refused_real_photo_download_says_what_to_do_and_lets_the_lesson_go_on(server, tmp_path, monkeypatch, capsys):
    from anime_lib.data.domains import load_real_photos

    spec = with_counts(REGISTRY["selfie2anime"], SMALL_LAYOUT, drive_id=None, min_bytes=None, url=server.url("quota.html"))
    monkeypatch.setattr(registry, "REGISTRY", {**REGISTRY, "selfie2anime": spec})
    assert load_real_photos("selfie2anime", 16, root=tmp_path / "data") is None
    said = capsys.readouterr().out
    assert "DownloadError" in said and str(spec.archive_path(tmp_path / "data").resolve()) in said
    assert "ran on ToyFaces" in said and "run this section again" in said


@pytest.mark.parametrize("value", [None, "none", "", "toyfaces"])
def test_real_photos_switched_off_say_how_to_switch_them_on(value, capsys):
    from anime_lib.data.domains import load_real_photos

    assert load_real_photos(value, 16) is None
    assert "selfie2anime" in capsys.readouterr().out


def test_a_wrong_real_photo_folder_is_explained_not_raised(tmp_path, capsys):
    from anime_lib.data.domains import load_real_photos

    (tmp_path / "photos" / "trainA").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(tmp_path / "photos" / "trainA" / "one.jpg")
    assert load_real_photos(tmp_path / "photos", 16) is None  # no trainB
    said = capsys.readouterr().out
    assert "trainA/trainB/testA/testB" in said and "skipped" in said
    assert load_real_photos(tmp_path / "nothing_here", 16) is None
    assert "not a folder" in capsys.readouterr().out
