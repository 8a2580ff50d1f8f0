# Put on PYTHONPATH by `make test-notebooks`, so every notebook kernel starts with the offline guard.
import os
import sys

if os.environ.get("ROADMAP_OFFLINE") == "1":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tools.offline_guard import install

    install()
    del sys.path[0]
