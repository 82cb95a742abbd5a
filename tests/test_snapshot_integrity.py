"""Reproduce never uses a damaged snapshot: each restored object is verified against its sha256 first."""

import json

from mlkit.objects import object_path

from test_snapshots import reads_job


def _damage(path):
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"1", b"9"))


def test_reproduce_refuses_a_damaged_object_naming_it(project):
    data, folder = reads_job(project, text_in_folder="a1")  # a "1" for _damage to change
    run = project.run_json("reads", check=0)
    file_input, folder_input = run["inputs"]
    data.write_text("x\n5\n")  # changed: reproduce restores the snapshot
    _damage(object_path(project.archive, file_input["sha256"]))
    refused = project.mlkit("reproduce", run["id"], check=1)
    assert f"object {file_input['sha256'][:12]} is damaged" in refused.stderr, refused.stderr
    assert "mlkit runs verify" in refused.stderr and "Traceback" not in refused.stderr
    assert len(project.run_folders("reads")) == 1  # nothing ran on the damaged bytes

    data.write_text("x\n1\n2\n")  # the file is as it was again; a file inside the folder snapshot is damaged
    (folder / "a.txt").unlink()
    listing = json.loads(object_path(project.archive, folder_input["sha256"]).read_bytes())
    _damage(object_path(project.archive, listing["files"][0][1]))
    refused = project.mlkit("reproduce", run["id"], check=1)
    assert f"object {listing['files'][0][1][:12]} is damaged" in refused.stderr, refused.stderr
    verify = project.mlkit("runs", "verify", check=1)
    assert listing["files"][0][1][:12] in verify.stdout + verify.stderr
