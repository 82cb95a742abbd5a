"""The command line as every user meets it: a reader that goes away, an unknown kernel, metrics for people."""

import json
import os
import subprocess

from conftest import MLKIT


def test_a_reader_going_away_ends_the_command_quietly(project):
    for number in range(3):
        (project.archive / "train" / f"20261205-0100{number:02d}-000-abcdef").mkdir(parents=True)
    project.mlkit("runs", "reindex", check=0)
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_ARCHIVE"}
    listing = subprocess.Popen([MLKIT, "runs", "list", "--status", "damaged"], cwd=project.root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing.stdout.close()  # the reader is gone before the command writes, as with `| head -0`
    _, err = listing.communicate(timeout=60)
    assert (listing.returncode, err) == (141, b"")


def test_an_unknown_kernel_is_refused_before_the_run_is_announced(project):
    project.job("hello", "n = 1", "print(n)")
    result = project.mlkit("run", "hello", "--kernel", "no-such-kernel", check=2)
    assert result.stderr.startswith("mlkit: error: no kernel named 'no-such-kernel'; kernels: ")
    assert "running" not in result.stderr and not list(project.archive.glob(".staging/*"))


def test_metrics_are_shown_to_four_digits_and_kept_whole_in_json(project):
    project.job("score", None, "import mlkit\nmlkit.log_metric('accuracy', 0.7769886363636364)")
    run = project.run_json("score", check=0)
    shown = project.mlkit("runs", "show", run["id"], check=0).stdout
    assert "  accuracy = 0.777" in shown.splitlines() and "0.77698" not in shown
    assert json.loads(project.mlkit("runs", "show", run["id"], "--json", check=0).stdout)["metrics"] == {
        "accuracy": 0.7769886363636364}


def test_help_lists_plugin_commands_in_their_own_section(project):
    shown = project.mlkit("--help", check=0).stdout
    own, plugins = shown.split("commands from mlkit.edtech:")
    assert "recommend" not in own and "  run " in own
    assert [line.split()[0:2] for line in plugins.strip().splitlines()][:3] == [
        ["recommend", "a"], ["data", "generate"], ["data", "ingest"]]
