"""Print the DATASHEET.md table row (size and sha256) of files in data/.

    python tools/datasheet.py data/jargon.txt data/model_timeline.csv
"""

import hashlib
import sys
from pathlib import Path


def describe(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    for name in sys.argv[1:]:
        size, digest = describe(Path(name))
        rel = Path(name).as_posix().removeprefix("data/")
        print(f"| `{rel}` | {size} | `{digest}` |")
