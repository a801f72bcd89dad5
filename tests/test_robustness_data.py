"""Bad input tried as a new user would: every case ends in a clear message and loses nothing.

Datasets: prepare() never deletes a file it did not extract; a broken or partial archive is moved
aside instead of being reused on every call; a download without Content-Length is checked before it
counts. Images: pixel limit before decoding, folders, broken links and mistyped paths named plainly.
"""
from __future__ import annotations

import http.server
import io
import os
import struct
import threading
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from anime_lib.data import images
from anime_lib.data.domains import load_domains, read_folder
from anime_lib.data.download import MANIFEST_NAME, DownloadError, extract_into, fetch_url
from anime_lib.data.images import FolderNotFoundError, ImageError, load_image
from anime_lib.data.registry import REGISTRY, local_folder, with_counts

LAYOUT = {"trainA": 2, "trainB": 2, "testA": 1, "testB": 1}


def png_bytes(color=(200, 30, 30), size=(20, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def dataset_zip(layout=LAYOUT) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, n in layout.items():
            for i in range(n):
                zf.writestr(f"{folder}/{i:04d}.png", png_bytes((10 * i, 100, 200)))
    return buf.getvalue()


@pytest.fixture
def spec():
    return with_counts(REGISTRY["selfie2anime"], LAYOUT, drive_id=None, min_bytes=None)


# --------------------------------------------------------------------------------------------
# prepare() and your own files
# --------------------------------------------------------------------------------------------
def test_reextract_after_count_mismatch_keeps_your_files(tmp_path, spec):
    spec.archive_path(tmp_path).write_bytes(dataset_zip())
    folder = spec.prepare(tmp_path, progress=False)
    (folder / "my_notes.md").write_text("mine")
    (folder / "my_results").mkdir()
    (folder / "my_results" / "best.png").write_bytes(png_bytes())
    (folder / "trainA" / "0000.png").unlink()  # count mismatch: prepare() re-extracts
    assert spec.prepare(tmp_path, progress=False) == folder
    assert (folder / "trainA" / "0000.png").is_file()
    assert (folder / "my_notes.md").read_text() == "mine"
    assert (folder / "my_results" / "best.png").is_file()
    assert (folder / MANIFEST_NAME).is_file()


def test_force_reextract_keeps_your_files_and_renames_a_clash(tmp_path, spec):
    folder = tmp_path / "selfie2anime"
    (folder / "trainA").mkdir(parents=True)
    (folder / "trainA" / "0000.png").write_bytes(png_bytes((1, 2, 3)))  # yours, same name as a member
    (folder / "notes.txt").write_text("mine")
    spec.archive_path(tmp_path).write_bytes(dataset_zip())
    with pytest.warns(UserWarning, match="renamed, not overwritten"):
        assert spec.prepare(tmp_path, progress=False) == folder
    assert (folder / "trainA" / "0000.png.kept").read_bytes() == png_bytes((1, 2, 3))
    assert (folder / "notes.txt").read_text() == "mine"


def test_extract_into_removes_only_what_it_extracted(tmp_path):
    old = tmp_path / "old.zip"
    old.write_bytes(dataset_zip({"trainA": 3}))
    target = tmp_path / "ds"
    extract_into(old, target)
    (target / "trainA" / "mine.png").write_bytes(png_bytes())
    new = tmp_path / "new.zip"
    new.write_bytes(dataset_zip({"trainA": 1}))
    files, kept = extract_into(new, target)
    assert files == ["trainA/0000.png"] and kept == []
    assert sorted(p.name for p in (target / "trainA").iterdir()) == ["0000.png", "mine.png"]


def test_your_extra_images_are_named_not_deleted(tmp_path, spec):
    spec.archive_path(tmp_path).write_bytes(dataset_zip())
    folder = spec.prepare(tmp_path, progress=False)
    (folder / "trainA" / "selfie_of_me.png").write_bytes(png_bytes())
    with pytest.raises(DownloadError, match="did not come from it") as err:
        spec.prepare(tmp_path, progress=False)
    assert "selfie_of_me.png" in str(err.value) and "retry later" not in str(err.value)
    assert (folder / "trainA" / "selfie_of_me.png").is_file()
    assert spec.archive_path(tmp_path).is_file()  # the archive is fine: kept


# --------------------------------------------------------------------------------------------
# Broken and partial archives
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", ["truncated", "partial"])
def test_broken_archive_is_moved_aside_not_reused(tmp_path, spec, payload):
    archive = spec.archive_path(tmp_path)
    good = dataset_zip()
    archive.write_bytes(good[: len(good) // 2] if payload == "truncated" else dataset_zip({"trainA": 1}))
    with pytest.raises(DownloadError) as err:
        spec.prepare(tmp_path, url="http://127.0.0.1:9/unreachable.zip", progress=False)
    msg = str(err.value)
    aside = archive.with_name(archive.name + ".broken")
    assert aside.is_file() and not archive.exists()
    assert str(aside) in msg and "call prepare() again" in msg and "retry later" not in msg
    assert str(archive.resolve()) in msg  # where a copy downloaded by hand goes
    # the next call does not trip over the same file: it tries to download a fresh copy
    with pytest.raises(DownloadError, match="Could not reach"):
        spec.prepare(tmp_path, url="http://127.0.0.1:9/unreachable.zip", progress=False)
    # and a good archive put there by hand works
    archive.write_bytes(good)
    assert spec.prepare(tmp_path, progress=False) == tmp_path / "selfie2anime"


# --------------------------------------------------------------------------------------------
# Downloads without Content-Length
# --------------------------------------------------------------------------------------------
@pytest.fixture
def no_length_server():
    good = dataset_zip()
    bodies = {"/good.zip": good, "/truncated.zip": good[: len(good) - 40]}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.end_headers()  # no Content-Length
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_without_content_length_is_verified(no_length_server, tmp_path):
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="not a complete zip or tar archive"):
        fetch_url(f"{no_length_server}/truncated.zip", dest, progress=False)
    assert not dest.exists() and not any(tmp_path.glob("*.part"))
    fetch_url(f"{no_length_server}/good.zip", dest, progress=False)
    assert zipfile.ZipFile(dest).testzip() is None


def test_prepare_from_a_server_without_content_length(no_length_server, tmp_path, spec):
    with pytest.raises(DownloadError, match="not a complete zip"):
        spec.prepare(tmp_path, url=f"{no_length_server}/truncated.zip", progress=False)
    assert not spec.archive_path(tmp_path).exists()  # nothing left behind to be reused
    assert spec.prepare(tmp_path, url=f"{no_length_server}/good.zip", progress=False) == tmp_path / "selfie2anime"


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces width x height RGB pixels but holds no image data (nothing to decode)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path):
    path = tmp_path / "panorama.png"
    path.write_bytes(png_header_only(20_000, 15_000))  # 300 Mpx: between PIL's warning and its error
    with pytest.raises(ImageError, match=r"20000x15000 px .*more than the limit of 250,000,000 pixels"):
        load_image(path)


def test_pixel_limit_applies_to_real_images(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    path.write_bytes(png_bytes(size=(40, 40)))
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)  # 1,600 px is above it, below PIL's 2x error
    with pytest.raises(ImageError, match="more than the limit of 1,000 pixels"):
        load_image(path)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_a_broken_symlink_is_named(tmp_path):
    link = tmp_path / "face.png"
    os.symlink(tmp_path / "moved_away.png", link)
    with pytest.raises(ImageError, match="broken symbolic link .*moved_away.png"):
        load_image(link)


def test_a_broken_symlink_in_a_dataset_folder_is_skipped_and_named(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "a" / "ok.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "a" / "link.png")
    s = read_folder(tmp_path / "a", "human", 16)
    assert len(s) == 1
    assert "link.png is a broken symbolic link" in capsys.readouterr().out


def test_mistyped_paths_get_a_near_miss_hint(tmp_path):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "photos" / "me.png")
    with pytest.raises(FileNotFoundError, match="did you mean .*photos/me.png"):
        load_image(tmp_path / "photos" / "me.pgn")
    with pytest.raises(FileNotFoundError, match=r"did you mean .*photos\?"):
        load_image(tmp_path / "fotos" / "me.png")
    with pytest.raises(FileNotFoundError, match=r"my_selfies' is not a folder \(nothing exists there"):
        load_domains(str(tmp_path / "my_selfies"), size=16)
    (tmp_path / "my_selfie2anime").mkdir()
    with pytest.raises(FolderNotFoundError, match="did you mean .*my_selfie2anime"):
        load_domains(str(tmp_path / "my_selfie2anim"), size=16)
    with pytest.raises(ValueError, match="did you mean 'selfie2anime'"):
        load_domains("selfi2anime", size=16)
    with pytest.raises(FileNotFoundError, match=r"is not a folder .*did you mean .*photos\?"):
        local_folder(tmp_path / "photoz", tmp_path / "photos")


def test_arrays_still_load():
    assert load_image(np.zeros((20, 20, 3), np.uint8)).size == (20, 20)
