"""The Linux guest tier is opt-in: nothing here is collected unless EMBER_LINUX=1.

    make linux-guest && EMBER_LINUX=1 /usr/bin/python3 -m pytest -q tests/linux

See docs/linux-guest.md.  It needs a host with hardware virtualisation.
"""

import os


def pytest_ignore_collect(collection_path, config):
    if os.environ.get("EMBER_LINUX") != "1":
        return True
    return None
