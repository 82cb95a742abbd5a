"""The README's EdTech walkthrough runs as written: its data steps, from a shell without a pseudonym key."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def walkthrough_lines() -> list:
    """The commands of the README's EdTech block, up to and including `mlkit data ingest`."""
    section = (REPO / "README.md").read_text().split("## The EdTech example")[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    ingest = next(i for i, line in enumerate(block) if line.startswith("mlkit data ingest"))
    return block[:ingest + 1]


def test_the_edtech_data_steps_run_as_written(tmp_path):
    shutil.copytree(REPO / "contracts", tmp_path / "contracts")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("MLKIT_PSEUDONYM_KEY", "MLKIT_ARCHIVE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = "set -euo pipefail\n" + "\n".join(walkthrough_lines())
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "bad" / "safe.parquet").is_file()
