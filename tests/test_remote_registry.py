"""The registry on a remote: claims and alias moves that count only when the store really holds them, against a real
S3 endpoint (moto's server on 127.0.0.1) and a file:// share."""

import json
import time

import test_remotes
from test_remotes import _race

from mlkit.archive import Run

s3_endpoint, bucket = test_remotes.s3_endpoint, test_remotes.bucket  # the fixtures of the remote tests


def _setting(bucket, s3_endpoint):
    return {"url": f"s3://{bucket}/team", "endpoint_url": s3_endpoint}


def test_claims_hold_on_a_store_that_checks_then_writes(tmp_path, bucket, s3_endpoint, monkeypatch):
    # moto's server checks If-None-Match / If-Match, then writes: widen that gap as CPU load does
    from moto.s3.responses import S3Response
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history, remote_promote
    from mlkit.remotes import remote_from_setting
    checksum = S3Response._get_checksum

    def slow_checksum(self, *args, **kwargs):
        time.sleep(0.05)  # between the precondition check and the write
        return checksum(self, *args, **kwargs)

    monkeypatch.setattr(S3Response, "_get_checksum", slow_checksum)
    setting = _setting(bucket, s3_endpoint)
    versions = _race(setting, "register", range(1, 9), tmp_path / "go-register")
    assert sorted(map(int, versions)) == list(range(1, 9))
    registry = RemoteRegistry(remote_from_setting("origin", setting))
    assert [v["version"] for v in registry.versions("m")] == list(range(1, 9))
    assert len({v["run_id"] for v in registry.versions("m")}) == 8  # each racer's claim is the one stored
    remote_promote(registry, "m", 1)
    events = [json.loads(line) for line in _race(setting, "promote", [2, 3], tmp_path / "go-promote")]
    winners = [e for e in events if not e["reason"].startswith("declined")]
    assert len(winners) == 1 and remote_aliases(registry, "m") == {"champion": winners[0]["to_version"]}
    assert len([e for e in remote_history(registry, "m") if e["reason"].startswith("declined")]) == 1


def test_a_claim_whose_answer_was_lost_and_sent_again_is_won(tmp_path, bucket, s3_endpoint):
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_promote
    from mlkit.remotes import remote_from_setting
    registry = RemoteRegistry(remote_from_setting("origin", _setting(bucket, s3_endpoint)))
    fs = registry.remote.fs
    pipe_file, call_s3, resent = fs.pipe_file, fs.call_s3, []

    def lost_answer(send, *args, **kwargs):
        if not resent:  # the first attempt reaches the store, its answer is lost, the client sends it again
            resent.append(send(*args, **kwargs))
        return send(*args, **kwargs)

    fs.pipe_file = lambda *args, **kwargs: lost_answer(pipe_file, *args, **kwargs)
    run = Run(tmp_path, manifest={"id": "20240501-120001-000-abcdef", "job": "train", "status": "succeeded",
                                  "artifacts": [{"path": "artifacts/model.skops", "sha256": "1" * 64}]})
    assert registry.register("m", run)["version"] == 1  # the retry's 412 met our own claim
    assert [v["version"] for v in registry.versions("m")] == [1]
    remote_promote(registry, "m", 1)
    run.manifest["artifacts"][0]["sha256"] = "2" * 64
    fs.pipe_file = pipe_file
    assert registry.register("m", run)["version"] == 2
    resent.clear()
    fs.call_s3 = lambda *args, **kwargs: lost_answer(call_s3, *args, **kwargs) if args[0] == "put_object" else \
        call_s3(*args, **kwargs)
    event = remote_promote(registry, "m", 2, expected=1)
    assert event["to_version"] == 2 and not event["reason"].startswith("declined")
    assert remote_aliases(registry, "m") == {"champion": 2}
