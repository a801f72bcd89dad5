"""Colab: with Google Drive mounted, outputs, checkpoints and datasets default to the course's Drive folder, so
they survive a runtime reset; without Drive nothing changes; explicit folders always win."""
from __future__ import annotations

from anime_lib import config


def test_a_mounted_drive_keeps_outputs_and_data(tmp_path, monkeypatch, capsys):
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    monkeypatch.setenv("ANIME_LIB_DRIVE", str(drive))
    monkeypatch.delenv("ANIME_LIB_DATA", raising=False)
    assert config.drive_root() == drive / "anime_course"
    out = config.out_dir(None, "04_cyclegan")
    assert out == drive / "anime_course" / "runs" / "04_cyclegan" and out.is_dir()
    said = capsys.readouterr().out
    assert str(out) in said and "survive a runtime reset" in said
    assert config.data_root() == drive / "anime_course" / "data"
    # explicit choices win, silently
    assert config.out_dir(tmp_path / "mine", "04_cyclegan") == tmp_path / "mine" and capsys.readouterr().out == ""
    monkeypatch.setenv("ANIME_LIB_DATA", str(tmp_path / "datasets"))
    assert config.data_root() == tmp_path / "datasets"


def test_without_drive_the_checkout_folders_stay_the_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_LIB_DRIVE", str(tmp_path / "not_mounted"))
    monkeypatch.delenv("ANIME_LIB_DATA", raising=False)
    monkeypatch.setattr(config, "repo_root", lambda: tmp_path / "checkout")
    assert config.drive_root() is None
    assert config.out_dir(None, "04_cyclegan") == tmp_path / "checkout" / "runs" / "local" / "04_cyclegan"
    assert config.data_root() == tmp_path / "checkout" / "data" and capsys.readouterr().out == ""
