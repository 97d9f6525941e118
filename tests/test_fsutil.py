"""Atomic writes (bench.fsutil): staged renames, exclusive creates, one fsync each."""

import os

import pytest

from bench import fsutil
from bench.errors import StorageError


@pytest.fixture
def fsyncs(monkeypatch):
    """The file descriptors os.fsync was called on, in order."""
    calls = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_staged_success_fsyncs_and_renames(tmp_path, fsyncs):
    target = tmp_path / "sub" / "file.bin"
    with fsutil.staged(target) as staging:
        assert staging.path.parent == target.parent and staging.path.name.endswith(".tmp")
        staging.path.write_bytes(b"new")
        assert not target.exists() and not fsyncs
    assert target.read_bytes() == b"new"
    assert len(fsyncs) == 1
    assert os.listdir(target.parent) == ["file.bin"]


def test_staged_failure_keeps_the_old_file_and_leaves_nothing(tmp_path, fsyncs):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), fsutil.staged(target) as staging:
        staging.path.write_bytes(b"partial")
        raise RuntimeError("write failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"] and not fsyncs


def test_staged_failing_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def broken(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageError, match=f"writing {target} failed: an input/output error"), \
            fsutil.staged(target) as staging:
        staging.path.write_bytes(b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["file.bin"]


def test_staged_target_chosen_in_the_block(tmp_path, fsyncs):
    with fsutil.staged(tmp_path / "model.bpa") as staging:
        staging.path.write_bytes(b"abc")
        staging.target = tmp_path / f"model-{fsutil.sha256_file(staging.path)[:8]}.bpa"
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [b"abc"]
    assert staging.target.exists() and not (tmp_path / "model.bpa").exists()
    assert len(fsyncs) == 1


def test_write_atomic_fsyncs_once_and_cleans_up_on_failure(tmp_path, fsyncs):
    target = tmp_path / "record.json"
    fsutil.write_json_atomic(target, {"a": 1})
    assert target.read_text() == '{\n "a": 1\n}\n' and len(fsyncs) == 1

    def failing(f):
        f.write(b"half")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        fsutil.write_atomic(target, failing)
    assert target.read_text() == '{\n "a": 1\n}\n'
    assert os.listdir(tmp_path) == ["record.json"] and len(fsyncs) == 1


def test_create_exclusive_never_replaces(tmp_path, fsyncs):
    path = tmp_path / "claim.1.json"
    assert fsutil.create_exclusive(path, lambda f: f.write(b"first"))
    assert path.read_bytes() == b"first" and len(fsyncs) == 1
    written = []
    assert not fsutil.create_exclusive(path, written.append)
    assert path.read_bytes() == b"first" and not written and len(fsyncs) == 1
