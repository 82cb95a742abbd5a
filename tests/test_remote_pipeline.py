"""Pipelines with a remote: stage lines name the remote cache that served them, and the pipeline's lease on the
remote keeps two runners (two clones, two machines) from running one pipeline at once."""

import shutil

from test_remotes import _add_s3, _clone, bucket, s3_endpoint  # noqa: F401 (fixtures)

PIPELINE = "stages:\n  - {name: first, job: j}\n"


def test_stage_lines_name_the_remote_whose_cache_served_them(tmp_path, bucket, s3_endpoint):  # noqa: F811
    a = _clone(tmp_path / "a")
    _add_s3(a, bucket, s3_endpoint, 'push = "on-success"')
    (a.root / "params" / "pipeline.yaml").write_text(PIPELINE)
    first = a.mlkit("pipeline", "run", "--remote", "origin", check=0)
    assert "first (j): succeeded run" in first.stderr
    for options in ([], ["--max-workers", "2"]):  # one after another, and side by side
        shutil.rmtree(a.archive)  # a fresh runner: the remote has the run
        again = a.mlkit("pipeline", "run", "--remote", "origin", *options, check=0)
        assert "first (j): succeeded (cached from origin) run" in again.stderr, again.stderr
