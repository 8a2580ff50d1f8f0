# Put on PYTHONPATH by `make test-notebooks`, so every notebook kernel starts with the offline guard;
# tests/test_no_triton.py also sets ROADMAP_BLOCK_IMPORTS=triton to play a machine without Triton.
import os
import sys

if os.environ.get("ROADMAP_OFFLINE") == "1":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tools.offline_guard import install

    install()
    del sys.path[0]

if os.environ.get("ROADMAP_BLOCK_IMPORTS"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tools.import_blocker import install as _block

    _block(os.environ["ROADMAP_BLOCK_IMPORTS"])
    del sys.path[0]

if os.environ.get("ROADMAP_SANDBOX"):  # tools/grade.py: a submission's kernel stays in its folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tools.sandbox import install as _fence

    _fence(os.environ["ROADMAP_SANDBOX"], os.environ["ROADMAP_SANDBOX_LOG"])
    del sys.path[0]
