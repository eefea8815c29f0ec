"""The download cache: where it is, a damaged cache fetched again or refused loudly, and only being offline
taken for unavailable data (pip is faked here; the real downloads are tested through benchmark_wheel, adk_files
and experimental_map_files)."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from cryosampler.experiments import downloads
from cryosampler.experiments.downloads import DownloadUnavailable

from conftest import downloaded_or_skip

NAME = "pkg-1.0-py3-none-any.whl"
GOOD = b"the distribution"
SHA256 = hashlib.sha256(GOOD).hexdigest()


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.DATA_DIR_ENV, str(tmp_path))
    assert downloads.data_dir() == tmp_path
    monkeypatch.delenv(downloads.DATA_DIR_ENV)
    assert downloads.data_dir().parts[-2:] == ("results", "downloads")


def fake_pip(monkeypatch, content: bytes | None = GOOD, returncode: int = 0, stderr: str = "") -> list:
    """Replace pip by one that writes ``content`` (None: nothing) as NAME into the -d folder; returns its calls."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        if content is not None:
            Path(command[command.index("-d") + 1], NAME).write_bytes(content)
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(downloads.subprocess, "run", run)
    return calls


def test_an_intact_cached_file_is_used_as_it_is(tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch)
    (tmp_path / NAME).write_bytes(GOOD)
    assert downloads.pip_download("pkg==1.0", NAME, tmp_path, sha256=SHA256) == tmp_path / NAME
    assert calls == []


def test_a_damaged_cached_file_is_downloaded_again(tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch)
    (tmp_path / NAME).write_bytes(GOOD[:5])  # cut short
    assert downloads.pip_download("pkg==1.0", NAME, tmp_path, sha256=SHA256).read_bytes() == GOOD
    assert len(calls) == 1


def test_a_file_still_wrong_when_downloaded_again_fails_in_one_line(tmp_path, monkeypatch):
    fake_pip(monkeypatch, content=b"another build")
    (tmp_path / NAME).write_bytes(GOOD[:5])
    with pytest.raises(ValueError, match=r"SHA-256 is not that of pkg==1\.0 .*even when downloaded again") as err:
        downloads.pip_download("pkg==1.0", NAME, tmp_path, sha256=SHA256)
    assert not isinstance(err.value, DownloadUnavailable) and "\n" not in str(err.value)


def test_a_damaged_cached_file_is_refused_when_only_looking(tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch)
    (tmp_path / NAME).write_bytes(GOOD[:5])
    with pytest.raises(ValueError, match=r"SHA-256 is not that of pkg==1\.0 .*delete it and run again") as err:
        downloads.pip_download("pkg==1.0", NAME, tmp_path, download=False, sha256=SHA256)
    assert not isinstance(err.value, DownloadUnavailable)
    assert calls == [] and (tmp_path / NAME).read_bytes() == GOOD[:5]


def test_a_missing_file_when_only_looking_is_unavailable(tmp_path):
    with pytest.raises(DownloadUnavailable, match=r"not found; download it with: python -m pip download"):
        downloads.pip_download("pkg==1.0", NAME, tmp_path, download=False, sha256=SHA256)


@pytest.mark.parametrize("stderr", [
    "ERROR: Could not find a version that satisfies the requirement pkg==1.0 (from versions: none)\n"
    "ERROR: No matching distribution found for pkg==1.0",
    "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...: Failed to establish a "
    "new connection: [Errno 101] Network is unreachable')'\nERROR: No matching distribution found for pkg==1.0",
])
def test_pip_out_of_reach_of_pypi_is_unavailable(tmp_path, monkeypatch, stderr):
    fake_pip(monkeypatch, content=None, returncode=1, stderr=stderr)
    with pytest.raises(DownloadUnavailable, match=r"cannot download pkg==1\.0 into .*No matching distribution") as err:
        downloads.pip_download("pkg==1.0", NAME, tmp_path / "cache", sha256=SHA256)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("stderr", [
    "ERROR: Could not find a version that satisfies the requirement pkg==1.0 (from versions: 0.1, 0.2)\n"
    "ERROR: No matching distribution found for pkg==1.0",
    "/usr/bin/python: No module named pip",
])
def test_other_pip_failures_are_errors(tmp_path, monkeypatch, stderr):
    fake_pip(monkeypatch, content=None, returncode=1, stderr=stderr)
    with pytest.raises(ValueError, match=r"cannot download pkg==1\.0") as err:
        downloads.pip_download("pkg==1.0", NAME, tmp_path / "cache", sha256=SHA256)
    assert not isinstance(err.value, DownloadUnavailable)


def test_tests_skip_only_when_the_data_are_unavailable():
    def offline():
        raise DownloadUnavailable("pkg-1.0.whl not found")

    def damaged():
        raise ValueError("pkg-1.0.whl: SHA-256 is not that of pkg==1.0")

    with pytest.raises(pytest.skip.Exception, match="the data unavailable"):
        downloaded_or_skip(offline, "the data")
    with pytest.raises(ValueError, match="SHA-256"):
        downloaded_or_skip(damaged, "the data")
    assert downloaded_or_skip(lambda: 3, "the data") == 3
