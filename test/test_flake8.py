"""ament_flake8 over the whole package (99 columns, single quotes, google import order).

flake8 forks worker processes; forked from a pytest process that has run rclpy / DDS tests,
they crashed now and then (the DDS threads do not survive a fork). So ament_flake8 runs in a
fresh interpreter here, with the same call ament's test template makes.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = ('import sys\n'
          'from ament_flake8.main import main_with_errors\n'
          'rc, errors = main_with_errors(argv=[])\n'
          'print(f"{len(errors)} code style errors / warnings")\n'
          'sys.exit(rc)\n')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    done = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
