"""Write README.md from nbs/index.ipynb (markdown cells, in order).

`--check` fails if README.md is out of date; `--quick-start N` prints the Nth quick-start command.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    """The README text that nbs/index.ipynb defines."""
    notebook = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))
    parts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            source = cell["source"]
            parts.append("".join(source) if isinstance(source, list) else source)
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


def quick_start_commands(text: str) -> list:
    """The commands of the fenced bash block right under the README's "Quick start" heading."""
    after = text.split("## Quick start", 1)[1]
    block = after.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def main(argv) -> int:
    text = render()
    if "--quick-start" in argv:
        print(quick_start_commands(text)[int(argv[argv.index("--quick-start") + 1]) - 1])
        return 0
    readme = ROOT / "README.md"
    if "--check" in argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            print("README.md is out of date with nbs/index.ipynb: run python tools/make_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
