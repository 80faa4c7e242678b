"""Offline stand-in for get-pip.py: ensurepip, then pip install with the given arguments."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip"], check=True)
if args:
    sys.exit(subprocess.run([sys.executable, "-m", "pip", "install"] + args, check=False).returncode)
