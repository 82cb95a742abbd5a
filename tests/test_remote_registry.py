"""The registry on a remote: claims and alias moves that count only when the store really holds them, against a real
S3 endpoint (moto's server on 127.0.0.1) and a file:// share."""

import json
import time

import pytest

import test_remotes
from conftest import Project
from test_remotes import _race

from mlkit.archive import Run
from mlkit.registry import Registry

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


TRAIN = ("import mlkit\nfrom sklearn.linear_model import LogisticRegression\n"
         "mlkit.log_model(LogisticRegression(C=seed).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]))")
PUBLISH = ("import mlkit\nfrom mlkit.registry import Registry\nfrom mlkit.remote_registry import ANY_VERSION\n"
           "from mlkit.registry_mirror import promote_model, register_model, registry_remote\n"
           "registry, remote = Registry(), registry_remote()\n"
           "version = register_model(registry, 'm', mlkit.upstream(model_run, job='train'), remote=remote)\n"
           "measured = ANY_VERSION if expected < 0 else (expected or None)\n"
           "event = promote_model(registry, 'm', version.version, expected=measured, reason='gate passed', remote=remote)\n"
           "mlkit.log_value('event', event)")


def _clone(root, seed: int, expected: int, *remote) -> Project:
    """A project whose pipeline trains a model (with `seed`) and publishes it (promotion measured at `expected`)."""
    root.mkdir(parents=True)
    project = Project(root)
    project.job("train", "seed: int = 1", TRAIN)
    project.job("publish", "model_run: str = ''\nexpected: int = -1", PUBLISH)
    (root / "params" / "pipeline.yaml").write_text(
        f"stages:\n  - {{name: train, job: train, params: {{seed: {seed}}}}}\n"
        f"  - {{name: publish, job: publish, upstream: {{model_run: train}}, params: {{expected: {expected}}}}}\n")
    project.mlkit("remote", "add", "origin", *remote, check=0)
    return project


def _models(project) -> list:
    return [(e["version"], e["aliases"], e["run"]) for e in
            json.loads(project.mlkit("models", "list", "m", "--json", check=0).stdout)]


@pytest.mark.parametrize("store", ["file", "s3"])
def test_a_pipeline_with_a_remote_registers_and_promotes_on_the_remote(tmp_path, store, request):
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history
    from mlkit.remotes import remote_from_setting
    if store == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        setting = {"url": f"s3://{request.getfixturevalue('bucket')}/team", "endpoint_url": endpoint}
        options = (setting["url"], "--endpoint-url", endpoint)
    else:
        (tmp_path / "share").mkdir()
        setting = {"url": f"file://{tmp_path / 'share'}"}
        options = (setting["url"],)
    a = _clone(tmp_path / "a", 1, -1, *options)
    b = _clone(tmp_path / "elsewhere" / "b", 2, 0, *options)  # measured when there was no champion
    a.mlkit("pipeline", "run", "--remote", "origin", check=0)
    b.mlkit("pipeline", "run", "--remote", "origin", check=0)
    shared = RemoteRegistry(remote_from_setting("origin", setting))
    assert [v["version"] for v in shared.versions("m")] == [1, 2]
    assert remote_aliases(shared, "m") == {"champion": 1}  # B's promotion was measured against no champion
    declined = [e for e in remote_history(shared, "m") if e["reason"].startswith("declined v2")]
    assert len(declined) == 1
    b_runs = {v["run_id"] for v in shared.versions("m")}
    assert [(version, aliases) for version, aliases, _ in _models(b)] == [(1, "champion"), (2, "")]  # the mirror
    assert {run for _, _, run in _models(b)} == b_runs
    history = json.loads(b.mlkit("models", "history", "m", "--json", check=0).stdout)
    assert [e["to_version"] for e in history] == [1, 1] and history[-1]["reason"].startswith("declined v2")
    assert [(version, aliases) for version, aliases, _ in _models(a)] == [(1, "champion")]


def test_the_first_pipeline_with_a_remote_publishes_the_registry_the_clone_had(tmp_path, bucket, s3_endpoint):
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history
    from mlkit.remotes import remote_from_setting
    url = f"s3://{bucket}/team"
    a = _clone(tmp_path / "a", 2, 1, url, "--endpoint-url", s3_endpoint)  # its pipeline measures against v1
    first = a.run_json("train", "-p", "seed", "1", check=0)["id"]
    a.mlkit("models", "register", first, "--name", "m", check=0)  # before the team shared anything: local only
    a.mlkit("models", "promote", "m", "1", "--reason", "first model", check=0)
    a.mlkit("pipeline", "run", "--remote", "origin", check=0)
    shared = RemoteRegistry(remote_from_setting("origin", {"url": url, "endpoint_url": s3_endpoint}))
    assert [v["version"] for v in shared.versions("m")] == [1, 2] and shared.versions("m")[0]["run_id"] == first
    assert remote_aliases(shared, "m") == {"champion": 2}  # measured against the published v1: promoted
    assert [e["reason"].split(" (")[0] for e in remote_history(shared, "m")] == ["published from a local registry",
                                                                                   "gate passed"]
    assert [(version, aliases) for version, aliases, _ in _models(a)] == [(1, ""), (2, "champion")]


LOOK = ("import mlkit\nfrom mlkit.registry import Registry, aliases\nregistry = Registry()\n"
        "champion = aliases(registry, 'm')['champion']\n"
        "run = registry.archive.get_run(registry.version('m', champion).run_id)  # its run must be here\n"
        "mlkit.log_value('seen', {'champion': champion, 'run': run.id})")


def test_a_fresh_runner_s_pipeline_reads_the_remote_champion_from_its_first_stage(tmp_path, bucket, s3_endpoint):
    url = f"s3://{bucket}/team"
    a = _clone(tmp_path / "a", 1, -1, url, "--endpoint-url", s3_endpoint)
    a.mlkit("pipeline", "run", "--remote", "origin", check=0)  # the team's champion: m v1, on the remote
    champion_run = _models(a)[0][2]
    b = _clone(tmp_path / "b", 1, -1, url, "--endpoint-url", s3_endpoint)  # a fresh runner: empty archive
    b.job("look", None, LOOK)
    (b.root / "params" / "pipeline.yaml").write_text("stages:\n  - {name: look, job: look}\n")
    b.mlkit("pipeline", "run", "--remote", "origin", check=0)
    [folder] = b.run_folders("look")
    assert json.loads((folder / "values.json").read_text())["seen"] == {"champion": 1, "run": champion_run}


def test_push_publishes_a_local_registry_and_pull_mirrors_it(tmp_path, bucket, s3_endpoint):
    url = f"s3://{bucket}/team"
    a = _clone(tmp_path / "a", 1, -1, url, "--endpoint-url", s3_endpoint)
    run = a.run_json("train", check=0)["id"]
    a.mlkit("models", "register", run, "--name", "m", check=0)  # local only: no --remote
    a.mlkit("models", "promote", "m", "1", "--reason", "first", check=0)
    pushed = json.loads(a.mlkit("push", "--all", "--json", check=0).stdout)
    assert pushed["models"] == ["m"] and json.loads(a.mlkit("push", "--all", "--json", check=0).stdout)["models"] == []
    b = _clone(tmp_path / "b", 1, -1, url, "--endpoint-url", s3_endpoint)
    (b.archive / "registry" / "m").mkdir(parents=True)  # B's own local m: the remote's replaces it, never the reverse
    assert json.loads(b.mlkit("pull", "--all", "--json", check=0).stdout)["models"] == ["m"]
    assert _models(b) == [(1, "champion", run)]
    a.mlkit("models", "promote", "m", "1", "--alias", "challenger", check=0)  # m is kept on origin now: moved there
    b.mlkit("pull", "--all", check=0)
    assert _models(b) == [(1, "champion,challenger", run)]


def test_pull_brings_the_remote_registry_into_the_local_one(tmp_path, bucket, s3_endpoint):
    url = f"s3://{bucket}/team"
    a = _clone(tmp_path / "a", 1, -1, url, "--endpoint-url", s3_endpoint)
    run = a.run_json("train", check=0)
    a.mlkit("models", "register", "m", "--run", run["id"], "--remote", "origin", check=0)
    a.mlkit("models", "promote", "m", "1", "--remote", "origin", "--reason", "first", check=0)
    assert _models(a) == [(1, "champion", run["id"])]  # the local registry mirrors the remote one
    b = _clone(tmp_path / "b", 2, -1, url, "--endpoint-url", s3_endpoint)
    pulled = json.loads(b.mlkit("pull", "--all", "--json", check=0).stdout)
    assert pulled["runs"] == 1 and pulled["models"] == ["m"]
    assert _models(b) == [(1, "champion", run["id"])]
    shown = json.loads(b.mlkit("models", "show", "m@champion", check=0).stdout)
    assert shown["version"] == 1 and shown["run_id"] == run["id"]
    assert json.loads(b.mlkit("models", "history", "m", "--json", check=0).stdout)[0]["reason"] == "first"


def test_changes_by_hand_to_a_mirrored_model_go_to_its_remote(tmp_path, bucket, s3_endpoint):
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history
    from mlkit.remotes import remote_from_setting
    url = f"s3://{bucket}/team"
    shared = RemoteRegistry(remote_from_setting("origin", {"url": url, "endpoint_url": s3_endpoint}))
    a = _clone(tmp_path / "a", 1, -1, url, "--endpoint-url", s3_endpoint)
    a.mlkit("models", "register", a.run_json("train", check=0)["id"], "--name", "m", "--remote", "origin", check=0)
    a.mlkit("models", "promote", "m", "1", "--remote", "origin", check=0)
    b = _clone(tmp_path / "b", 2, -1, url, "--endpoint-url", s3_endpoint)
    b.mlkit("pull", "--all", check=0)
    # no --remote: the model came from origin, so its new version and the promotion are made there
    retrained = b.run_json("train", "-p", "seed", "2", check=0)["id"]
    registered = b.mlkit("models", "register", retrained, "--name", "m", check=0)
    assert "v2" in registered.stdout and "kept on remote 'origin'" in registered.stderr
    b.mlkit("models", "promote", "m", "2", "--reason", "retrained", check=0)
    assert remote_aliases(shared, "m") == {"champion": 2}
    rolled = a.mlkit("models", "rollback", "m", "--reason", "complaints", check=0)  # A never saw v2: still right
    assert "v2 -> v1" in rolled.stdout
    assert remote_aliases(shared, "m") == {"champion": 1} and _models(a)[0][:2] == (1, "champion")
    events = remote_history(shared, "m", "champion")
    assert events[-1]["reason"] == "complaints" and events[-1]["reverts"] == events[-2]["id"]
    assert "no earlier version" in a.mlkit("models", "rollback", "m", check=2).stderr
    b.mlkit("pull", "--all", check=0)
    assert [(version, aliases) for version, aliases, _ in _models(b)] == [(1, "champion"), (2, "")]


def _wait_for(server, predicate, seconds: float = 30):
    from test_serving_server import AUTH
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        version = server.client.get("/version", headers=AUTH).json()
        if predicate(version):
            return version
        time.sleep(0.2)
    return version


def test_a_rollback_on_a_remote_is_declined_when_another_runner_moved_the_alias_meanwhile(tmp_path, bucket,
                                                                                          s3_endpoint, monkeypatch):
    import mlkit.remote_registry as shared_registry
    from mlkit.remote_registry import RemoteRegistry, remote_aliases, remote_history, remote_promote, remote_rollback
    from mlkit.remotes import remote_from_setting
    registry = RemoteRegistry(remote_from_setting("origin", _setting(bucket, s3_endpoint)))
    run = Run(tmp_path, manifest={"id": "20240501-120001-000-abcdef", "job": "train", "status": "succeeded",
                                  "artifacts": [{"path": "artifacts/model.skops", "sha256": ""}]})
    for number in (1, 2, 3):
        run.manifest["artifacts"][0]["sha256"] = str(number) * 64
        registry.register("m", run)
    remote_promote(registry, "m", 1)
    remote_promote(registry, "m", 2)
    read_history = shared_registry.remote_history

    def history_then_another_runner_promotes(*args, **kwargs):
        events = read_history(*args, **kwargs)
        remote_promote(registry, "m", 3, reason="the other runner")  # between the reading and the move back
        return events

    monkeypatch.setattr(shared_registry, "remote_history", history_then_another_runner_promotes)
    event = remote_rollback(registry, "m")
    monkeypatch.undo()
    assert event["reason"].startswith("declined v1 (rollback)") and event["reverts"] is None
    assert remote_aliases(registry, "m") == {"champion": 3}  # the other runner's move stands
    assert [e["to_version"] for e in remote_history(registry, "m")] == [1, 2, 3, 3]
    assert remote_rollback(registry, "m")["to_version"] == 2  # undoes v2 -> v3, the latest move not undone


def test_serve_follows_the_alias_on_a_remote(tmp_path, monkeypatch):
    from test_serving_app import make_served_archive
    from test_serving_server import Server
    from mlkit.remote_registry import RemoteRegistry, remote_promote
    from mlkit.remotes import remote_from_setting
    from mlkit.transfer import push
    (tmp_path / "share").mkdir()
    url = f"file://{tmp_path / 'share'}"
    publisher = make_served_archive(tmp_path / "publisher", versions=3)  # another machine's archive
    remote, runs = remote_from_setting("share", url), [v for v in Registry(publisher).versions("edtech")]
    push(publisher, remote, [publisher.get_run(v.run_id) for v in runs], progress=False)
    shared = RemoteRegistry(remote)
    for version in runs:
        shared.register("edtech", publisher.get_run(version.run_id))
    remote_promote(shared, "edtech", 1)
    (tmp_path / "server").mkdir()
    here = Project(tmp_path / "server")  # a machine with an empty archive and the remote
    here.mlkit("remote", "add", "share", url, check=0)
    monkeypatch.chdir(here.root)
    server = Server(here.archive, "edtech@champion", extra=("--remote", "share"))
    try:
        server.wait_ready()
        assert _wait_for(server, lambda v: True)["version"] == 1  # pulled from the remote at start
        remote_promote(shared, "edtech", 2, expected=1)
        assert _wait_for(server, lambda v: v["version"] == 2)["version"] == 2  # the remote alias moved: swapped in
        model = tmp_path / "share" / "runs" / "train" / runs[2].run_id / runs[2].artifact
        model.write_bytes(model.read_bytes() + b"tampered")  # v3's file changed on the remote after registration
        remote_promote(shared, "edtech", 3, expected=2)
        last = _wait_for(server, lambda v: v["reloads"] and v["reloads"][-1].get("outcome") == "refused")
        assert last["version"] == 2 and last["reloads"][-1]["outcome"] == "refused"  # sha256 checked after the pull
    finally:
        assert server.stop() == 0, server.process.stderr.read()
    assert [e["to_version"] for e in json.loads(here.mlkit("models", "history", "edtech", "--json",
                                                                check=0).stdout)] == [1, 2, 3]
    pinned = Server(tmp_path / "fresh", "edtech:2", extra=("--remote", "share"))  # a version, into an empty archive
    try:
        assert _wait_for(pinned.wait_ready(), lambda v: True)["version"] == 2
    finally:
        assert pinned.stop() == 0, pinned.process.stderr.read()
