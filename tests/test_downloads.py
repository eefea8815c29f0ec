"""The download cache: where it is (pip_download's refusals are tested through benchmark_wheel and adk_files)."""

from cryosampler.experiments import downloads


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.DATA_DIR_ENV, str(tmp_path))
    assert downloads.data_dir() == tmp_path
    monkeypatch.delenv(downloads.DATA_DIR_ENV)
    assert downloads.data_dir().parts[-2:] == ("results", "downloads")
